//! The bounded queue of one fast-ack layer, as plain state: no I/O, no
//! locks, no wake-ups. [`Shared`](super::shared::Shared) holds it under a
//! mutex and acts on the [`Signal`] each change returns.

use std::collections::{BTreeSet, VecDeque};

use super::job::Job;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No inner service yet, or the start-up replay is running.
    Starting,
    /// Accepting events.
    Open,
    /// Shutting down: no intake, the queue drains.
    Closed,
    /// Shut down: the workers are gone.
    Stopped,
}

/// Why the queue has no slot for a new event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoSlot {
    Full,
    Starting,
    ShuttingDown,
}

/// What a change asks of the owner: wake one parked worker, and/or wake
/// those waiting for the queue to drain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub(crate) struct Signal {
    pub(crate) wake_worker: bool,
    pub(crate) idle: bool,
}

/// What a worker gets when it asks for a job.
#[derive(Debug)]
pub(crate) enum Take {
    /// Run it; `wake_worker` asks for the next worker when jobs are left.
    Job(Job, Signal),
    /// Nothing to do: park until woken.
    Park,
    /// The layer stopped: the worker ends.
    Stopped,
}

/// What became of a job put in its reserved slot.
#[derive(Debug)]
#[must_use]
pub(crate) enum Filled {
    Queued(Signal),
    /// The layer stopped meanwhile: the job is given back.
    Stopped(Job, Signal),
}

/// The events still unfinished when the workers stopped, by where they
/// were; they stay pending in the journal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Left {
    pub(crate) queued: Vec<u64>,
    pub(crate) in_flight: Vec<u64>,
    pub(crate) waiting_retry: Vec<u64>,
}

/// Every event accepted and not finished is in exactly one of `reserved`
/// (being journaled), `ready`, `running` or `waiting` (for a retry), and
/// their sum is bounded by the capacity (events recovered from the journal
/// aside: they were accepted before).
#[derive(Debug)]
pub(crate) struct Queue {
    phase: Phase,
    capacity: usize,
    reserved: usize,
    ready: VecDeque<Job>,
    running: BTreeSet<u64>,
    waiting: BTreeSet<u64>,
    /// Workers parked, waiting for a job.
    parked: usize,
    /// Workers woken for a job that have not looked at the queue yet.
    waking: usize,
}

impl Queue {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            phase: Phase::Starting,
            capacity,
            reserved: 0,
            ready: VecDeque::new(),
            running: BTreeSet::new(),
            waiting: BTreeSet::new(),
            parked: 0,
            waking: 0,
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// Events accepted and not finished.
    pub(crate) fn outstanding(&self) -> usize {
        self.reserved + self.ready.len() + self.running.len() + self.waiting.len()
    }

    /// `(queued, in_flight, waiting_retry)` now.
    pub(crate) fn depths(&self) -> (usize, usize, usize) {
        (self.ready.len(), self.running.len(), self.waiting.len())
    }

    /// The room for entries taken over from a shared journal: none unless
    /// intake is open.
    pub(crate) fn room(&self) -> usize {
        match self.phase {
            Phase::Open => self.capacity.saturating_sub(self.outstanding()),
            Phase::Starting | Phase::Closed | Phase::Stopped => 0,
        }
    }

    /// Intake opens once the start-up replay is queued (unless a shutdown
    /// began meanwhile).
    pub(crate) fn open(&mut self) {
        if self.phase == Phase::Starting {
            self.phase = Phase::Open;
        }
    }

    /// Intake stops (shutdown begins).
    pub(crate) fn close(&mut self) -> Signal {
        if matches!(self.phase, Phase::Starting | Phase::Open) {
            self.phase = Phase::Closed;
        }
        self.idle_signal()
    }

    /// The workers stop; what is left is reported.
    pub(crate) fn stop(&mut self) -> Left {
        self.phase = Phase::Stopped;
        Left {
            queued: self.ready.iter().map(|job| job.seq).collect(),
            in_flight: self.running.iter().copied().collect(),
            waiting_retry: self.waiting.iter().copied().collect(),
        }
    }

    /// Takes a slot for an event about to be journaled.
    pub(crate) fn reserve(&mut self) -> Result<(), NoSlot> {
        match self.phase {
            Phase::Open if self.outstanding() < self.capacity => {
                self.reserved += 1;
                Ok(())
            }
            Phase::Open => Err(NoSlot::Full),
            Phase::Starting => Err(NoSlot::Starting),
            Phase::Closed | Phase::Stopped => Err(NoSlot::ShuttingDown),
        }
    }

    /// Gives a reserved slot back, unused.
    pub(crate) fn unreserve(&mut self) -> Signal {
        self.reserved -= 1;
        self.idle_signal()
    }

    /// Puts `job` in a reserved slot; gives it back once stopped (nobody
    /// would run it).
    pub(crate) fn fill(&mut self, job: Job) -> Filled {
        self.reserved -= 1;
        if self.phase == Phase::Stopped {
            return Filled::Stopped(job, self.idle_signal());
        }
        self.ready.push_back(job);
        Filled::Queued(self.wake_one())
    }

    /// Queues an entry recovered from the journal (accepted before: the
    /// capacity does not apply).
    pub(crate) fn push_recovered(&mut self, job: Job) -> Signal {
        self.ready.push_back(job);
        self.wake_one()
    }

    /// The next job for a worker. `woken`: the worker was woken for one.
    pub(crate) fn take(&mut self, woken: bool) -> Take {
        if woken {
            // After `stop` (which wakes every worker) the counts no longer
            // matter.
            self.waking = self.waking.saturating_sub(1);
        }
        if self.phase == Phase::Stopped {
            return Take::Stopped;
        }
        match self.ready.pop_front() {
            Some(job) => {
                self.running.insert(job.seq);
                let signal = self.wake_one();
                Take::Job(job, signal)
            }
            None => {
                self.parked += 1;
                Take::Park
            }
        }
    }

    /// A running job is finished (processed, refused or dead-lettered).
    pub(crate) fn finish(&mut self, seq: u64) -> Signal {
        self.running.remove(&seq);
        self.idle_signal()
    }

    /// A running job waits for its retry.
    pub(crate) fn wait_retry(&mut self, seq: u64) {
        self.running.remove(&seq);
        self.waiting.insert(seq);
    }

    /// A job's retry delay is over: back in the queue, unless stopped.
    pub(crate) fn retry(&mut self, job: Job) -> Signal {
        if self.phase == Phase::Stopped {
            return Signal::default();
        }
        self.waiting.remove(&job.seq);
        self.ready.push_back(job);
        self.wake_one()
    }

    fn idle_signal(&self) -> Signal {
        Signal {
            wake_worker: false,
            idle: self.outstanding() == 0,
        }
    }

    /// Wakes a parked worker for the jobs in `ready`, only if none is
    /// already on its way. The woken worker wakes the next one if it leaves
    /// jobs behind, so a burst wakes workers one at a time, as fast as they
    /// take jobs: a handler that waits on I/O still gets every worker (each
    /// one wakes the next before it waits), and a handler that never waits
    /// gets one worker draining the burst, instead of all of them woken to
    /// find the queue empty.
    fn wake_one(&mut self) -> Signal {
        let wake = !self.ready.is_empty() && self.waking == 0 && self.parked > 0;
        if wake {
            self.parked -= 1;
            self.waking += 1;
        }
        Signal {
            wake_worker: wake,
            idle: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(seq: u64) -> Job {
        Job::for_test(seq)
    }

    fn open(capacity: usize) -> Queue {
        let mut queue = Queue::new(capacity);
        queue.open();
        queue
    }

    #[test]
    fn intake_opens_after_the_start_and_closes_for_good() {
        let mut queue = Queue::new(4);
        assert_eq!(queue.reserve(), Err(NoSlot::Starting));
        queue.open();
        assert_eq!(queue.reserve(), Ok(()));
        assert!(!queue.close().idle, "a reserved slot is outstanding");
        queue.open();
        assert_eq!(queue.phase(), Phase::Closed, "open never reopens");
        assert_eq!(queue.reserve(), Err(NoSlot::ShuttingDown));
        assert!(queue.unreserve().idle);
    }

    #[test]
    fn the_capacity_bounds_reserved_queued_running_and_waiting_together() {
        let mut queue = open(4);
        for seq in 0..4 {
            queue.reserve().unwrap();
            if seq > 0 {
                assert!(matches!(queue.fill(job(seq)), Filled::Queued(_)));
            }
        }
        assert_eq!(queue.reserve(), Err(NoSlot::Full));
        let Take::Job(first, _) = queue.take(false) else {
            panic!("a job is ready")
        };
        queue.wait_retry(first.seq);
        assert_eq!(queue.depths(), (2, 0, 1));
        assert_eq!(queue.reserve(), Err(NoSlot::Full), "waiting still counts");
        assert!(!queue.unreserve().idle);
        assert_eq!(queue.reserve(), Ok(()), "the freed slot");
        // Recovered entries were accepted before: no capacity check.
        let _ = queue.push_recovered(job(9));
        assert_eq!(queue.outstanding(), 5);
        assert_eq!(queue.room(), 0);
    }

    #[test]
    fn a_burst_wakes_one_parked_worker_at_a_time() {
        let mut queue = open(8);
        assert!(matches!(queue.take(false), Take::Park));
        assert!(matches!(queue.take(false), Take::Park));
        let mut wakes = 0;
        for seq in 0..3 {
            queue.reserve().unwrap();
            let Filled::Queued(signal) = queue.fill(job(seq)) else {
                panic!()
            };
            wakes += usize::from(signal.wake_worker);
        }
        assert_eq!(wakes, 1, "one worker woken for the burst");
        let Take::Job(_, signal) = queue.take(true) else {
            panic!()
        };
        assert!(signal.wake_worker, "jobs left behind wake the next worker");
        let Take::Job(_, signal) = queue.take(true) else {
            panic!()
        };
        assert!(!signal.wake_worker, "nobody is parked any more");
    }

    #[test]
    fn finishing_the_last_event_signals_idle_and_stop_reports_what_is_left() {
        let mut queue = open(8);
        for seq in 0..3 {
            queue.reserve().unwrap();
            assert!(matches!(queue.fill(job(seq)), Filled::Queued(_)));
        }
        let Take::Job(a, _) = queue.take(false) else {
            panic!()
        };
        let Take::Job(b, _) = queue.take(false) else {
            panic!()
        };
        queue.wait_retry(b.seq);
        assert!(!queue.finish(a.seq).idle);
        let left = queue.stop();
        assert_eq!(
            left,
            Left {
                queued: vec![2],
                in_flight: vec![],
                waiting_retry: vec![1],
            }
        );
        assert!(matches!(queue.take(false), Take::Stopped));
        assert_eq!(queue.retry(b), Signal::default(), "no retry once stopped");
        queue.reserve().unwrap_err();
    }

    #[test]
    fn a_reserved_slot_filled_after_the_stop_gives_the_job_back() {
        let mut queue = open(8);
        queue.reserve().unwrap();
        let _ = queue.stop();
        let Filled::Stopped(job, signal) = queue.fill(job(5)) else {
            panic!()
        };
        assert_eq!(job.seq, 5);
        assert!(signal.idle);
    }
}
