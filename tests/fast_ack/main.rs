//! The fast-ack layer: the ack does not wait for the handler, the queue is
//! bounded, failures are retried then dead-lettered and replayed, shutdown
//! drains, the journal is written before every 2xx and replayed at start-up.
//! One test binary, a module per topic; the shared helpers are in `support`.

use taskhook_test_support as common;
mod support;

mod ack;
mod dead_letters;
mod journal;
mod load;
mod retry;
mod shutdown;
mod spans;
mod wiring;
mod workers;
