//! Placeholder entry point for `loadgen`; the real binary is built by its own issue.

fn main() {
    println!("loadgen: not implemented yet");
}
