//! What the binaries share about their command lines: turning clap's multi-line report
//! of a refused command line into the one line every binary prints. Takes clap's
//! rendered text, so this crate needs no clap of its own.

/// clap's rendered report of a refused command line (`error.render().to_string()`,
/// plain text) on one line: its message without the `error: ` prefix, then the details
/// it puts on further lines (the missing arguments, a tip), without the usage and the
/// pointer to `--help`.
pub fn one_line(rendered: &str) -> String {
    let mut line = String::new();
    for part in rendered.lines().map(str::trim) {
        if part.starts_with("Usage:") || part.starts_with("For more information") {
            break;
        }
        if part.is_empty() {
            continue;
        }
        if !line.is_empty() {
            line.push_str(if line.ends_with(':') {
                " "
            } else if part.starts_with("tip:") {
                "; "
            } else {
                ", "
            });
        }
        line.push_str(part.strip_prefix("error: ").unwrap_or(part));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_and_tips_join_the_message_and_the_usage_is_dropped() {
        let rendered = "error: the following required arguments were not provided:\n  \
                        --clients <N>\n\nUsage: loadgen --clients <N>\n\n\
                        For more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "the following required arguments were not provided: --clients <N>"
        );
        let rendered = "error: unexpected argument '--client' found\n\n  \
                        tip: a similar argument exists: '--clients'\n\nUsage: x\n";
        assert_eq!(
            one_line(rendered),
            "unexpected argument '--client' found; tip: a similar argument exists: '--clients'"
        );
    }
}
