//! Many tasks, their events interleaved in a random order, each pushed
//! twice, all at once on a multi-threaded runtime: every task's handler
//! runs exactly once, with its final state, and the progress handler sees
//! each intermediate state at most once.

use std::collections::HashMap;

use http::StatusCode;
use taskhook::fast_ack::FastAckLayer;
use taskhook::CallbackStack;

use super::{handler, progress, send, Seen, Steps};

const TASKS: usize = 200;

/// How a push was answered: its kind (`intermediate` or `final`), the
/// status, `taskhook-ignored` and `taskhook-duplicate`.
type Answered = (&'static str, StatusCode, Option<String>, Option<String>);

/// The final state of task `n`: one in five fails.
fn final_state(n: usize) -> &'static str {
    if n % 5 == 0 {
        "failed"
    } else {
        "succeeded"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_tasks_each_reach_the_handler_once_with_their_final_state() {
    let (finals, states) = (Seen::default(), Seen::default());
    let (service, handle) = CallbackStack::new()
        .profile(Steps::new())
        .on_progress(progress(&states))
        .fast_ack(FastAckLayer::builder().concurrency(8))
        .build(handler(&finals, None));
    handle.started().await;

    let mut pushes = Vec::new();
    for n in 0..TASKS {
        let id = format!("task_{n:03}");
        for (status, percent) in [
            ("queued", None),
            ("processing", Some(50)),
            (final_state(n), None),
        ] {
            // Each event twice, as a provider's duplicate would.
            pushes.push((id.clone(), status, percent));
            pushes.push((id.clone(), status, percent));
        }
    }
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    rng.shuffle(&mut pushes);

    let mut set = tokio::task::JoinSet::new();
    for (id, status, percent) in pushes {
        let service = service.clone();
        set.spawn(async move {
            let reply = send(&service, &id, status, percent).await;
            (status, reply)
        });
    }
    let mut answers: HashMap<Answered, usize> = HashMap::new();
    while let Some(joined) = set.join_next().await {
        let (status, reply) = joined.unwrap();
        let kind = if matches!(status, "queued" | "processing") {
            "intermediate"
        } else {
            "final"
        };
        *answers
            .entry((kind, reply.status, reply.ignored, reply.duplicate))
            .or_default() += 1;
    }
    let report = handle.shutdown(std::time::Duration::from_secs(30)).await;
    assert!(report.drained, "{report:?}");

    // Every push was answered 2xx: 202 for one final event per task, 200
    // for the rest.
    let ok = |kind, ignored: Option<&str>, duplicate: Option<&str>| {
        answers
            .get(&(
                kind,
                StatusCode::OK,
                ignored.map(str::to_owned),
                duplicate.map(str::to_owned),
            ))
            .copied()
            .unwrap_or(0)
    };
    let accepted = answers
        .get(&("final", StatusCode::ACCEPTED, None, None))
        .copied()
        .unwrap_or(0);
    assert_eq!(accepted, TASKS, "{answers:?}");
    assert_eq!(ok("final", None, Some("done")), TASKS, "{answers:?}");
    let intermediate = ok("intermediate", None, None)
        + ok("intermediate", Some("regression"), None)
        + ok("intermediate", None, Some("progress"));
    assert_eq!(intermediate, 4 * TASKS, "{answers:?}");
    assert_eq!(answers.values().sum::<usize>(), 6 * TASKS, "{answers:?}");

    // The handler: each task once, with its final state.
    let mut ran = finals.all();
    ran.sort();
    let expected: Vec<String> = (0..TASKS)
        .map(|n| match final_state(n) {
            "failed" => format!("task_{n:03} failed=failed"),
            _ => format!("task_{n:03} succeeded=completed"),
        })
        .collect();
    assert_eq!(ran, expected);
    assert_eq!(handle.stats().processed, TASKS as u64);

    // The progress handler: each state at most once, never a final one.
    let handled = states.all();
    let mut unique = handled.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), handled.len(), "a state ran twice");
    assert!(handled
        .iter()
        .all(|line| line.contains(" queued=") || line.contains(" processing=")));
    let stats = service.get_ref().stats();
    assert_eq!(stats.finals, 2 * TASKS as u64);
    assert_eq!(stats.handled, handled.len() as u64);
    assert_eq!(
        stats.handled + stats.duplicates + stats.regressions,
        4 * TASKS as u64
    );
}
