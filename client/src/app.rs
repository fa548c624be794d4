//! The event loop: one thread owns the session, the socket's writing half and the
//! console, and handles events from the input thread, the reader thread and Ctrl+C
//! in arrival order.
//!
//! Phases: `Running` until the user leaves or the server ends the session;
//! `Draining` after the end of piped input, until every reply is in or
//! `--wait` passes; `Closing` after a goodbye (ours or the server's shutdown notice),
//! until the server closes the connection or a short bound passes. No phase waits
//! without a bound except `Running`, which waits for the person.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};

use crate::cli::{Config, Mode};
use crate::connection::{self, CloseCause, FrameWriter, NetEvent, SendError};
use crate::console::{Console, InputEvent};
use crate::error::ClientError;
use crate::render::{self, Clock};
use crate::session::{Reaction, Session};

/// How long to wait for the server to close after our goodbye.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long to wait for the server to close after it announced it would.
const SERVER_CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
/// Frames read but not yet shown; past it the reader stops reading (see
/// [`connection::Connected::spawn_reader`]).
const NET_QUEUE: usize = 1024;

/// Everything the event loop reacts to.
#[derive(Debug)]
pub(crate) enum Event {
    Input(InputEvent),
    Net(NetEvent),
    /// Ctrl+C, SIGTERM or SIGHUP outside the line editor.
    Interrupt,
}

/// The event loop's two queues: the person's side is unbounded (it is slow, and its
/// sender must never block while the loop waits on rustyline), the network side is
/// bounded.
#[derive(Debug)]
struct Queues {
    events: Receiver<Event>,
    net: Receiver<NetEvent>,
}

/// A client, ready to [`run`](Client::run).
#[derive(Debug)]
pub struct Client {
    config: Config,
    events_tx: Sender<Event>,
    events_rx: Receiver<Event>,
}

/// Asks a running [`Client`] to say goodbye and exit, as Ctrl+C does. Cheap to clone,
/// safe to call from a signal-handling thread.
#[derive(Debug, Clone)]
pub struct Interrupter(Sender<Event>);

impl Interrupter {
    /// Makes the client leave cleanly (exit code 0).
    pub fn interrupt(&self) {
        let _ = self.0.send(Event::Interrupt);
    }
}

impl Client {
    /// A client for `config`; nothing happens until [`run`](Client::run).
    pub fn new(config: Config) -> Self {
        let (events_tx, events_rx) = crossbeam_channel::unbounded();
        Client {
            config,
            events_tx,
            events_rx,
        }
    }

    /// A handle that makes [`run`](Client::run) leave cleanly.
    pub fn interrupter(&self) -> Interrupter {
        Interrupter(self.events_tx.clone())
    }

    /// Connects, runs the session until it ends, and says why it ended: `Ok` when the
    /// user left, else the reason, whose [`ClientError::exit_code`] is the exit code.
    pub fn run(self) -> Result<(), ClientError> {
        let clock = Clock::local();
        let mut connected = connection::connect(
            &self.config.addr,
            &self.config.addrs,
            self.config.tls.as_ref(),
            self.config.connect_timeout,
        )?;
        let (net_tx, net_rx) = crossbeam_channel::bounded(NET_QUEUE);
        connected
            .spawn_reader(net_tx)
            .map_err(|e| ClientError::Local(format!("cannot start the reader thread: {e}")))?;
        let queues = Queues {
            events: self.events_rx,
            net: net_rx,
        };
        let console = match self.config.mode {
            Mode::Interactive => {
                Console::terminal(self.events_tx.clone(), Event::Input, clock.clone()).or_else(
                    |e| {
                        eprintln!("chat: {e}; falling back to plain lines");
                        Console::plain(self.events_tx.clone(), Event::Input, clock.clone())
                    },
                )?
            }
            Mode::Piped => Console::plain(self.events_tx.clone(), Event::Input, clock.clone())?,
        };
        let welcome = connected.welcome;
        let mut app = App {
            session: Session::new(welcome.nick.clone(), clock),
            writer: connected.writer,
            console,
            phase: Phase::Running,
            mode: self.config.mode,
            drain_timeout: self.config.drain_timeout,
        };
        app.console
            .show(&render::frame_line(&shared::Frame::Welcome {
                version: welcome.version,
                max_frame: welcome.max_frame,
                nick: welcome.nick,
            }));
        let start = app
            .session
            .start(self.config.nick.as_deref(), Some(&self.config.room));
        let result = match app.apply(start) {
            Some(result) => result,
            None => app.run_loop(&queues),
        };
        // After an unasked-for end, make sure the last lines (a shutdown notice) were
        // shown above the prompt before the prompt goes away.
        app.console
            .finish(result.is_err().then_some("* disconnected"));
        result
    }
}

#[derive(Debug)]
enum Phase {
    Running,
    Draining {
        until: Instant,
    },
    Closing {
        until: Instant,
        outcome: Result<(), ClientError>,
    },
}

struct App {
    session: Session,
    writer: FrameWriter,
    console: Console,
    phase: Phase,
    mode: Mode,
    drain_timeout: Duration,
}

impl App {
    fn run_loop(&mut self, queues: &Queues) -> Result<(), ClientError> {
        // Far enough to mean "no deadline" while waiting for the person.
        let never = Duration::from_secs(86_400);
        loop {
            let until = match &self.phase {
                Phase::Running => Instant::now() + never,
                Phase::Draining { until } | Phase::Closing { until, .. } => *until,
            };
            let outcome = select! {
                recv(queues.events) -> event => match event {
                    Ok(event) => self.handle(event),
                    // Cannot happen: `Client` holds a sender.
                    Err(_) => Some(Ok(())),
                },
                recv(queues.net) -> event => self.handle(Event::Net(event.unwrap_or(
                    // The reader always sends `Closed` last; if it died instead, the
                    // stream is gone all the same.
                    NetEvent::Closed(CloseCause::Eof),
                ))),
                default(until.saturating_duration_since(Instant::now())) => {
                    self.deadline_passed()
                }
            };
            if let Some(outcome) = outcome {
                return outcome;
            }
        }
    }

    /// Handles one event; `Some` ends the loop with that outcome.
    fn handle(&mut self, event: Event) -> Option<Result<(), ClientError>> {
        let closing = matches!(self.phase, Phase::Closing { .. });
        match event {
            Event::Input(InputEvent::Line(line)) => {
                if closing {
                    return None;
                }
                let reaction = self.session.input(&line);
                let outcome = self.apply(reaction);
                if outcome.is_none() && !matches!(self.phase, Phase::Closing { .. }) {
                    self.console.resume();
                }
                outcome
            }
            Event::Input(InputEvent::Eof) if self.mode == Mode::Piped && !closing => {
                let barrier = self.session.barrier();
                self.phase = Phase::Draining {
                    until: Instant::now() + self.drain_timeout,
                };
                self.apply(Reaction {
                    frames: vec![barrier],
                    ..Reaction::default()
                })
            }
            Event::Input(InputEvent::Eof | InputEvent::Interrupted) | Event::Interrupt => {
                self.leave();
                None
            }
            Event::Input(InputEvent::Failed(reason)) => {
                self.writer.goodbye();
                Some(Err(ClientError::Local(reason)))
            }
            Event::Net(NetEvent::Frame(frame)) => {
                let reaction = self.session.receive(frame);
                let outcome = self.apply(reaction);
                if outcome.is_none()
                    && matches!(self.phase, Phase::Draining { .. })
                    && self.session.is_idle()
                {
                    self.leave();
                }
                outcome
            }
            Event::Net(NetEvent::Closed(cause)) => {
                match std::mem::replace(&mut self.phase, Phase::Running) {
                    Phase::Closing { outcome, .. } => Some(outcome),
                    Phase::Running | Phase::Draining { .. } => Some(Err(cause.into_error())),
                }
            }
        }
    }

    fn deadline_passed(&mut self) -> Option<Result<(), ClientError>> {
        match std::mem::replace(&mut self.phase, Phase::Running) {
            Phase::Draining { .. } => {
                self.leave();
                None
            }
            Phase::Closing { outcome, .. } => Some(outcome),
            Phase::Running => None,
        }
    }

    /// Says goodbye and waits (bounded) for the server to close; a no-op if already
    /// closing.
    fn leave(&mut self) {
        if matches!(self.phase, Phase::Closing { .. }) {
            return;
        }
        self.writer.goodbye();
        self.phase = Phase::Closing {
            until: Instant::now() + GOODBYE_TIMEOUT,
            outcome: Ok(()),
        };
    }

    /// Shows a reaction's lines, sends its frames, and follows its verdict.
    fn apply(&mut self, reaction: Reaction) -> Option<Result<(), ClientError>> {
        for line in &reaction.lines {
            self.console.show(line);
        }
        for frame in &reaction.frames {
            match self.writer.send(frame) {
                Ok(()) => {}
                Err(SendError::Io(e)) => {
                    return Some(Err(ClientError::ConnectionLost {
                        reason: format!("sending failed: {e}"),
                    }));
                }
                Err(e) => {
                    self.session.not_sent(frame);
                    self.console.show(&format!("! not sent: {e}"));
                }
            }
        }
        if let Some(ended) = reaction.ended {
            // A user already leaving keeps their clean exit.
            if !matches!(self.phase, Phase::Closing { .. }) {
                self.phase = Phase::Closing {
                    until: Instant::now() + SERVER_CLOSE_TIMEOUT,
                    outcome: Err(ended),
                };
            }
        } else if reaction.quit {
            self.leave();
        }
        None
    }
}
