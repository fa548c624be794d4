//! The person's side: where typed lines come from and where received lines go.
//!
//! - [`Console::terminal`]: a rustyline editor on its own thread shows the `> ` prompt
//!   with line editing and history; received lines are printed above the prompt
//!   through rustyline's external printer, so the line being typed is redrawn rather
//!   than broken, each with the local time.
//! - [`Console::plain`]: a thread reads stdin line by line; received lines are written
//!   to stdout as they are.
//!
//! Stopping the terminal: `readline` cannot be cancelled from another thread, and
//! leaving it blocked would exit with the terminal still in raw mode. While the editor
//! exists rustyline owns SIGINT and turns it into an interrupted `readline`, which
//! restores the terminal; so [`Console::finish`] raises SIGINT on the calling thread
//! (delivered synchronously, the handler only writes to rustyline's pipe) and waits,
//! bounded, for the input thread to drop its editor. It does so only while the input
//! thread is in (or about to enter) `readline`, decided under the `EditorState` lock,
//! so the signal never reaches a handler other than rustyline's.

use std::io::{self, BufRead, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use crossbeam_channel::Sender as EventSender;
use rustyline::error::ReadlineError;
use rustyline::{Config as EditorConfig, DefaultEditor, ExternalPrinter};

use crate::error::ClientError;
use crate::render::Clock;

/// The prompt shown in interactive mode.
pub const PROMPT: &str = "> ";

/// How long [`Console::finish`] waits for the input thread to restore the terminal.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest wait after a line before prompting again without the event loop's word.
const RESUME_TIMEOUT: Duration = Duration::from_millis(500);

/// Something that happened on the input side.
#[derive(Debug)]
pub enum InputEvent {
    /// A line, without its terminator.
    Line(String),
    /// End of input (Ctrl+D at an empty prompt, or the end of piped stdin).
    Eof,
    /// Ctrl+C at the prompt.
    Interrupted,
    /// Reading input failed.
    Failed(String),
}

/// What the input thread is doing, shared with [`Console::finish`].
#[derive(Debug, Default)]
struct EditorState {
    /// Set by [`Console::finish`]; the input thread prompts no more once it is set.
    stop: bool,
    /// The input thread is in `readline`, or has decided to enter it; the editor, and
    /// so rustyline's SIGINT handler, exists while this holds.
    reading: bool,
}

fn lock(state: &Mutex<EditorState>) -> MutexGuard<'_, EditorState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where lines are shown, and the input thread feeding the event loop.
pub struct Console {
    output: Output,
    clock: Clock,
}

enum Output {
    Terminal {
        printer: Box<dyn ExternalPrinter + Send>,
        state: Arc<Mutex<EditorState>>,
        /// Disconnected once the input thread has dropped its editor.
        done: Receiver<()>,
        /// After each line the input thread waits here before prompting again, so a
        /// line that ends the session (`/quit`) leaves no fresh prompt behind.
        resume: Sender<()>,
    },
    Plain(io::Stdout),
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.output {
            Output::Terminal { .. } => "terminal",
            Output::Plain(_) => "plain",
        };
        f.debug_struct("Console").field("output", &kind).finish()
    }
}

impl Console {
    /// Starts the line editor on its own thread; typed lines arrive in `events`.
    pub fn terminal<E: Send + 'static>(
        events: EventSender<E>,
        wrap: fn(InputEvent) -> E,
        clock: Clock,
    ) -> Result<Console, ClientError> {
        let state = Arc::new(Mutex::new(EditorState::default()));
        let (setup_tx, setup_rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel::<()>();
        let (resume, resume_rx) = mpsc::channel::<()>();
        let thread_state = Arc::clone(&state);
        thread::Builder::new()
            .name("chat-input".to_owned())
            .spawn(move || {
                // Declared first, dropped last: `done` disconnects only after the
                // editor (and so the terminal mode and signal handler) is restored.
                let _done = done_tx;
                let config = EditorConfig::builder().auto_add_history(false).build();
                let mut editor = match DefaultEditor::with_config(config) {
                    Ok(editor) => editor,
                    Err(e) => {
                        let _ = setup_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                match editor.create_external_printer() {
                    Ok(printer) => {
                        let printer: Box<dyn ExternalPrinter + Send> = Box::new(printer);
                        let _ = setup_tx.send(Ok(printer));
                    }
                    Err(e) => {
                        let _ = setup_tx.send(Err(e.to_string()));
                        return;
                    }
                }
                edit_loop(&mut editor, &thread_state, &resume_rx, &events, wrap);
            })
            .map_err(|e| ClientError::Local(format!("cannot start the input thread: {e}")))?;
        match setup_rx.recv() {
            Ok(Ok(printer)) => Ok(Console {
                output: Output::Terminal {
                    printer,
                    state,
                    done,
                    resume,
                },
                clock,
            }),
            Ok(Err(e)) => Err(ClientError::Local(format!("terminal: {e}"))),
            Err(_) => Err(ClientError::Local(
                "terminal: the input thread stopped".to_owned(),
            )),
        }
    }

    /// Starts a thread reading stdin line by line into `events`.
    pub fn plain<E: Send + 'static>(
        events: EventSender<E>,
        wrap: fn(InputEvent) -> E,
        clock: Clock,
    ) -> Result<Console, ClientError> {
        thread::Builder::new()
            .name("chat-stdin".to_owned())
            .spawn(move || read_stdin(&events, wrap))
            .map_err(|e| ClientError::Local(format!("cannot start the input thread: {e}")))?;
        Ok(Console {
            output: Output::Plain(io::stdout()),
            clock,
        })
    }

    /// Shows one line (already escaped): above the prompt with the local time in a
    /// terminal, as is on stdout otherwise.
    pub fn show(&mut self, line: &str) {
        if line.is_empty() {
            return;
        }
        match &mut self.output {
            Output::Terminal { printer, .. } => {
                // With the newline: while no `readline` runs, the printer writes the
                // text as is, and the next prompt would overwrite an unterminated line.
                let text = format!("{} {line}\n", self.clock.now_hms());
                if printer.print(text.clone()).is_err() {
                    // The editor is gone; the terminal is back in cooked mode.
                    let _ = write!(io::stdout(), "{text}");
                }
            }
            Output::Plain(stdout) => {
                // A closed stdout (`chat | head -1`) must not stop the session.
                let _ = writeln!(stdout, "{line}");
            }
        }
    }

    /// Lets the terminal prompt for the next line once the last one was handled.
    pub fn resume(&self) {
        if let Output::Terminal { resume, .. } = &self.output {
            let _ = resume.send(());
        }
    }

    /// Stops the input side; in a terminal, waits (bounded) until the terminal is
    /// restored so a final message on stderr lands on a clean line.
    ///
    /// `farewell` is shown last, if it can be. Rustyline queues one external line at a
    /// time and an interrupted `readline` drops what it has not shown yet, so printing
    /// the farewell first waits until every earlier line is on screen; only the
    /// farewell itself may be lost. Pass one when the last lines matter (the server
    /// ended the session).
    pub fn finish(self, farewell: Option<&str>) {
        let Output::Terminal {
            mut printer,
            state,
            done,
            resume,
        } = self.output
        else {
            return;
        };
        let reading = {
            let mut state = lock(&state);
            state.stop = true;
            state.reading
        };
        // Wakes an input thread waiting to prompt again; it then ends.
        drop(resume);
        if let (true, Some(line)) = (reading, farewell) {
            // Not under the lock, and cannot block for good: if `readline` returns
            // meanwhile, the input thread ends (stop is set) and dropping the editor
            // fails this print.
            let _ = printer.print(format!("{} {line}\n", self.clock.now_hms()));
        }
        let state = lock(&state);
        if state.reading {
            // Under the lock: the thread cannot leave `readline` and drop the editor
            // (restoring the previous SIGINT handler) before the handler has run.
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGINT);
        }
        drop(state);
        // Disconnected means restored; a timeout leaves it to process exit.
        let _ = done.recv_timeout(STOP_TIMEOUT);
    }
}

fn edit_loop<E>(
    editor: &mut DefaultEditor,
    state: &Mutex<EditorState>,
    resume: &Receiver<()>,
    events: &EventSender<E>,
    wrap: fn(InputEvent) -> E,
) {
    loop {
        {
            let mut state = lock(state);
            if state.stop {
                return;
            }
            state.reading = true;
        }
        let read = editor.readline(PROMPT);
        lock(state).reading = false;
        let event = match read {
            Ok(line) => {
                // A `/login` line holds a password: it is not kept for the Up key.
                let login = matches!(
                    shared::text::parse_command(&line),
                    Ok(Some(shared::text::Command::Login { .. }))
                );
                if !line.trim().is_empty() && !login {
                    let _ = editor.add_history_entry(line.as_str());
                }
                InputEvent::Line(line)
            }
            Err(ReadlineError::Interrupted) => InputEvent::Interrupted,
            Err(ReadlineError::Eof) => InputEvent::Eof,
            Err(e) => InputEvent::Failed(format!("reading the terminal: {e}")),
        };
        let last = !matches!(event, InputEvent::Line(_));
        if events.send(wrap(event)).is_err() || last {
            return;
        }
        // Bounded: the event loop may be blocked printing a line that only the next
        // `readline` will take from rustyline's one-line queue.
        if let Err(RecvTimeoutError::Disconnected) = resume.recv_timeout(RESUME_TIMEOUT) {
            return;
        }
    }
}

fn read_stdin<E>(events: &EventSender<E>, wrap: fn(InputEvent) -> E) {
    let stdin = io::stdin();
    let mut stdin = stdin.lock();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let event = match stdin.read_until(b'\n', &mut buf) {
            Ok(0) => InputEvent::Eof,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                InputEvent::Line(String::from_utf8_lossy(&buf).into_owned())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => InputEvent::Failed(format!("reading stdin: {e}")),
        };
        let last = !matches!(event, InputEvent::Line(_));
        if events.send(wrap(event)).is_err() || last {
            return;
        }
    }
}
