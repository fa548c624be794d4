//! Placeholder entry point for `server`; the real binary is built by its own issue.

fn main() {
    println!("server: not implemented yet");
}
