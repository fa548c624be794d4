//! Integration tests of `loadgen`, compiled as one binary. Each module covers one part of
//! the issue: `recorder` (corrected vs uncorrected latency, exact merging),
//! `verification` (loss, duplicates, reordering, corruption), `results` (files, compare,
//! plot), `report_html` (the HTML report in a headless Chromium), `cli` (the binary: help,
//! exit codes, Ctrl+C), `end_to_end` (the real chat server, every scenario and
//! protocol, several servers), `fanout` (a room's senders and receivers in
//! separate processes), `brokers` (real Redis and NATS servers), `multi` (several
//! processes: `--start-at`, `merge`) and `tls` (the real server over TLS). Helpers live
//! in `common`.

mod common;

mod brokers;
mod cli;
mod end_to_end;
mod fanout;
mod multi;
mod recorder;
mod report_html;
mod results;
mod tls;
mod verification;
