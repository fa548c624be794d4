//! Placeholder entry point for `chat`; the real binary is built by its own issue.

fn main() {
    println!("chat: not implemented yet");
}
