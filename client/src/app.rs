//! The event loop: one thread owns the session, the socket's writing half and the
//! console, and handles events from the input thread, the reader thread and Ctrl+C
//! in arrival order.
//!
//! Phases: `Running` until the user leaves or the server ends the session;
//! `Draining` after the end of piped input, until every reply is in or
//! `--wait` passes; `Closing` after a goodbye (ours or the server's shutdown notice),
//! until the server closes the connection or a short bound passes. No phase waits
//! without a bound except `Running`, which waits for the person.
//!
//! Reconnecting (unless `--no-reconnect`): when the connection is lost while
//! `Running` (closed, reset, a failed write), or the server closes it after a shutdown
//! notice or a `3xx` error, the loop waits per [`crate::backoff`] and tries again, each
//! attempt on a thread of its own (see `app/link.rs`), showing a status line for each;
//! once connected, the [`Session`] takes the nick back and re-joins the rooms. It gives
//! up after `--reconnect-for`. Not once piped input has ended: with nothing left to
//! send, a lost connection (a shutdown notice or `3xx` included) ends the client.

mod link;

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, never, select};

use crate::cli::{Config, Mode};
use crate::connection::{self, CloseCause, Connected, NetEvent, SendError};
use crate::console::{Console, InputEvent};
use crate::error::ClientError;
use crate::render::{self, Clock};
use crate::session::{Reaction, Session};
use link::{Link, Next, Reconnector};

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
        let net = start_reader(&mut connected)?;
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
            link: Link::Up {
                writer: connected.writer,
                net,
            },
            reconnector: self.config.reconnect.map(Reconnector::new),
            console,
            phase: Phase::Running,
            input_ended: false,
            config: self.config,
        };
        app.console
            .show(&render::frame_line(&shared::Frame::Welcome {
                version: welcome.version,
                max_frame: welcome.max_frame,
                nick: welcome.nick,
            }));
        let start = app
            .session
            .start(app.config.nick.as_deref(), Some(&app.config.room));
        let result = match app.apply(start) {
            Some(result) => result,
            None => app.run_loop(&self.events_rx),
        };
        // After an unasked-for end, make sure the last lines (a shutdown notice) were
        // shown above the prompt before the prompt goes away.
        app.console
            .finish(result.is_err().then_some("* disconnected"));
        result
    }
}

/// Why a connection failed, short enough for a status line: without the "connection to
/// the server lost" and server address that [`ClientError`]'s text repeats.
fn brief(error: &ClientError) -> String {
    match error {
        ClientError::ConnectionLost { reason } => reason.clone(),
        ClientError::Connect { source, .. } => source.to_string(),
        ClientError::Handshake { reason, .. } => format!("handshake: {reason}"),
        other => other.to_string(),
    }
}

/// Starts the reader thread of a new connection. Its queue is bounded: past
/// [`NET_QUEUE`] frames read but not yet shown the reader stops reading (see
/// [`Connected::spawn_reader`]).
fn start_reader(connected: &mut Connected) -> Result<Receiver<NetEvent>, ClientError> {
    let (net_tx, net_rx) = crossbeam_channel::bounded(NET_QUEUE);
    connected
        .spawn_reader(net_tx)
        .map_err(|e| ClientError::Local(format!("cannot start the reader thread: {e}")))?;
    Ok(net_rx)
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
    link: Link,
    /// `None` with `--no-reconnect`.
    reconnector: Option<Reconnector>,
    console: Console,
    phase: Phase,
    /// Piped input has ended: nothing more will be sent, so a new connection would have
    /// nothing to answer and nothing to end the loop (`Running` waits for the person).
    /// A loss then ends the client instead of reconnecting.
    input_ended: bool,
    config: Config,
}

/// How the loop ends: `Some` ends it with that outcome.
type Outcome = Option<Result<(), ClientError>>;

impl App {
    /// Waits on the person's queue (unbounded: it is slow, and its sender must never
    /// block while the loop waits on rustyline), the network queue of the current
    /// connection (bounded), a connect attempt's result, and the nearest deadline.
    fn run_loop(&mut self, events: &Receiver<Event>) -> Result<(), ClientError> {
        // Far enough to mean "no deadline" while waiting for the person.
        let never_at = Instant::now() + Duration::from_secs(86_400);
        loop {
            let mut until = match &self.phase {
                Phase::Running => never_at,
                Phase::Draining { until } | Phase::Closing { until, .. } => *until,
            };
            let (net, connecting) = match &self.link {
                Link::Up { net, .. } => (net.clone(), never()),
                Link::Waiting { at } => {
                    until = until.min(*at);
                    (never(), never())
                }
                Link::Connecting { result } => (never(), result.clone()),
            };
            if let Some(at) = self.session.deadline() {
                until = until.min(at);
            }
            let outcome = select! {
                recv(events) -> event => match event {
                    Ok(event) => self.handle(event),
                    // Cannot happen: `Client` holds a sender.
                    Err(_) => Some(Ok(())),
                },
                recv(net) -> event => self.handle(Event::Net(event.unwrap_or(
                    // The reader always sends `Closed` last; if it died instead, the
                    // stream is gone all the same.
                    NetEvent::Closed(CloseCause::Eof),
                ))),
                recv(connecting) -> result => self.attempt_done(result.unwrap_or_else(|_| {
                    Err(ClientError::Local("the connect thread stopped".to_owned()))
                })),
                default(until.saturating_duration_since(Instant::now())) => {
                    self.deadline_passed()
                }
            };
            if let Some(outcome) = outcome {
                return outcome;
            }
            let tick = self.session.tick(Instant::now());
            if let Some(outcome) = self.apply(tick) {
                return outcome;
            }
        }
    }

    /// Handles one event; `Some` ends the loop with that outcome.
    fn handle(&mut self, event: Event) -> Outcome {
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
            Event::Input(InputEvent::Eof) if self.config.mode == Mode::Piped && !closing => {
                self.input_ended = true;
                if !matches!(self.link, Link::Up { .. }) {
                    // What was sent will not be answered: as when the connection is
                    // lost while draining, the script learns it from the exit code.
                    let reason = self
                        .reconnector
                        .as_ref()
                        .map_or_else(String::new, |r| r.cause().to_owned());
                    return Some(Err(ClientError::ConnectionLost { reason }));
                }
                let barrier = self.session.barrier();
                self.phase = Phase::Draining {
                    until: Instant::now() + self.config.drain_timeout,
                };
                self.apply(Reaction {
                    frames: vec![barrier],
                    ..Reaction::default()
                })
            }
            Event::Input(InputEvent::Eof | InputEvent::Interrupted) | Event::Interrupt => {
                self.leave()
            }
            Event::Input(InputEvent::Failed(reason)) => {
                if let Some(writer) = self.link.writer() {
                    writer.goodbye();
                }
                Some(Err(ClientError::Local(reason)))
            }
            Event::Net(NetEvent::Frame(frame)) => {
                let reaction = self.session.receive(frame);
                let outcome = self.apply(reaction);
                if outcome.is_none()
                    && matches!(self.phase, Phase::Draining { .. })
                    && self.session.is_idle()
                {
                    return self.leave();
                }
                outcome
            }
            Event::Net(NetEvent::Closed(cause)) => {
                match std::mem::replace(&mut self.phase, Phase::Running) {
                    Phase::Closing { outcome, .. } => match outcome {
                        Ok(()) => Some(Ok(())),
                        Err(e) => self.lost(e),
                    },
                    Phase::Running => self.lost(cause.into_error()),
                    Phase::Draining { .. } => Some(Err(cause.into_error())),
                }
            }
        }
    }

    fn deadline_passed(&mut self) -> Outcome {
        let now = Instant::now();
        match std::mem::replace(&mut self.phase, Phase::Running) {
            Phase::Draining { until } if now >= until => return self.leave(),
            Phase::Closing { until, outcome } if now >= until => {
                return match outcome {
                    Ok(()) => Some(Ok(())),
                    // The server announced its end but did not close: leave it.
                    Err(e) => self.lost(e),
                };
            }
            phase => self.phase = phase,
        }
        if let Link::Waiting { at } = self.link
            && now >= at
        {
            return self.start_attempt();
        }
        None
    }

    /// The connection is gone (or is being given up) for `cause`: reconnect if that
    /// may help and is wanted, else end with it.
    fn lost(&mut self, cause: ClientError) -> Outcome {
        let now = Instant::now();
        let Some(reconnector) = self.reconnector.as_mut() else {
            return Some(Err(cause));
        };
        if !cause.is_transient() || !matches!(self.phase, Phase::Running) {
            return Some(Err(cause));
        }
        if self.input_ended {
            // Lost while waiting for the last replies (a shutdown notice or a `3xx`
            // while draining): as at the end of input while disconnected, what was sent
            // will not be answered and the script learns it from the exit code.
            return Some(Err(ClientError::ConnectionLost {
                reason: brief(&cause),
            }));
        }
        let why = brief(&cause);
        reconnector.lost(why.clone(), now);
        self.link.abandon(now);
        let reaction = self.session.connection_lost();
        if let Some(outcome) = self.apply(reaction) {
            return Some(outcome);
        }
        self.schedule(&format!("connection lost: {why}"), None)
    }

    /// Shows `what` and when the next attempt starts, or gives up.
    fn schedule(&mut self, what: &str, last: Option<&ClientError>) -> Outcome {
        let now = Instant::now();
        let reconnector = self.reconnector.as_mut()?;
        match reconnector.next(now, last) {
            Next::Retry { delay, attempt } => {
                self.console.show(&format!(
                    "* {what}; reconnecting in {:.1} s (attempt {attempt})",
                    delay.as_secs_f64()
                ));
                self.link = Link::Waiting { at: now + delay };
                None
            }
            Next::GiveUp(error) => {
                self.console
                    .show(&format!("* {what}; giving up reconnecting"));
                Some(Err(error))
            }
        }
    }

    fn start_attempt(&mut self) -> Outcome {
        match link::spawn_attempt(
            self.config.addr.clone(),
            self.config.addrs.clone(),
            self.config.tls.clone(),
            self.config.connect_timeout,
        ) {
            Ok(result) => {
                self.link = Link::Connecting { result };
                None
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// A connect attempt finished.
    fn attempt_done(&mut self, result: Result<Connected, ClientError>) -> Outcome {
        let mut connected = match result {
            Ok(connected) => connected,
            Err(e) => {
                let attempt = self.reconnector.as_ref().map_or(0, Reconnector::attempts);
                return self.schedule(
                    &format!("attempt {attempt} failed: {}", brief(&e)),
                    Some(&e),
                );
            }
        };
        let net = match start_reader(&mut connected) {
            Ok(net) => net,
            Err(e) => return Some(Err(e)),
        };
        self.link = Link::Up {
            writer: connected.writer,
            net,
        };
        let reaction = self
            .session
            .reconnected(connected.welcome.nick, Instant::now());
        self.apply(reaction)
    }

    /// Says goodbye and waits (bounded) for the server to close; a no-op if already
    /// closing. Without a connection there is nobody to wait for: the loop ends.
    fn leave(&mut self) -> Outcome {
        if matches!(self.phase, Phase::Closing { .. }) {
            return None;
        }
        let Some(writer) = self.link.writer() else {
            return Some(Ok(()));
        };
        writer.goodbye();
        self.phase = Phase::Closing {
            until: Instant::now() + GOODBYE_TIMEOUT,
            outcome: Ok(()),
        };
        None
    }

    /// Shows a reaction's lines, sends its frames, and follows its verdict.
    fn apply(&mut self, reaction: Reaction) -> Outcome {
        for line in &reaction.lines {
            self.console.show(line);
        }
        if reaction.reconnected
            && let Some(reconnector) = self.reconnector.as_mut()
        {
            reconnector.succeeded();
        }
        for frame in &reaction.frames {
            let Some(writer) = self.link.writer() else {
                // The session sends nothing while offline; a frame now has nowhere to go.
                self.session.not_sent(frame);
                continue;
            };
            match writer.send(frame) {
                Ok(()) => {}
                Err(SendError::Io(e)) => {
                    return self.lost(ClientError::ConnectionLost {
                        reason: format!("sending failed: {e}"),
                    });
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
            return self.leave();
        }
        None
    }
}
