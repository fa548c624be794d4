//! Logins: `Login` / `/login`, the registered-nick rule of `SetNick`, and what
//! `--require-login` lets through before a login.
//!
//! The order of the checks is what keeps argon2 (tens of milliseconds in this worker)
//! bounded: a password from another host over plaintext is refused unchecked, then a
//! throttled account or address is refused unchecked, and only then is the password
//! verified. A password is never formatted into a log line, a reply or a `Debug`
//! string (`shared::Password` prints `<redacted>`).

use shared::names::{fold, validate_nick};
use shared::{ErrorCode, Password};

use super::{Context, Effect, Request, Session, refuse};
use crate::engine::Refusal;

/// Rate-limit tokens a login refused by the throttle costs on top of a login's own:
/// with the default limit, one second's worth.
pub(crate) const THROTTLED_LOGIN_COST: u32 = 1000;

/// Where a connection comes from, for the plaintext-password rule and the per-address
/// throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The peer's address.
    pub(crate) addr: std::net::IpAddr,
    /// Whether the connection is TLS.
    pub(crate) tls: bool,
}

impl Origin {
    /// A plaintext connection from loopback (tests; the default of a session).
    pub(crate) const LOOPBACK: Origin = Origin {
        addr: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        tls: false,
    };

    /// Whether a password sent on this connection may travel unencrypted: TLS, or a
    /// connection that never left the host.
    fn is_private(self) -> bool {
        // `to_canonical`: an IPv4-mapped IPv6 loopback address is loopback too.
        self.tls || self.addr.to_canonical().is_loopback()
    }
}

impl Session {
    /// Whether `--require-login` refuses `request` from this session: everything but
    /// the handshake, login, keepalives, help and goodbye, until it logs in.
    pub(super) fn needs_login(&self, ctx: &Context<'_>, request: &Request) -> bool {
        ctx.logins.require_login
            && self.account.is_none()
            && !matches!(
                request,
                Request::Hello { .. }
                    | Request::Login { .. }
                    | Request::Ping(_)
                    | Request::Pong
                    | Request::Help
                    | Request::Goodbye
                    | Request::ServerOnly(_)
            )
    }

    /// Refuses `nick` if it belongs to an account this session is not logged in to.
    pub(super) fn check_registered(&self, ctx: &Context<'_>, nick: &str) -> Result<(), Refusal> {
        let folded = fold(nick);
        if !ctx.logins.store.current().is_registered(&folded)
            || self.account.as_deref() == Some(&*folded)
        {
            return Ok(());
        }
        Err(Refusal::new(
            ErrorCode::NICK_REGISTERED,
            format!(
                "{} is a registered nick; /login {} PASSWORD to take it",
                shared::text::escape(nick),
                shared::text::escape(nick)
            ),
        ))
    }

    pub(super) fn login(
        &mut self,
        ctx: &Context<'_>,
        nick: &str,
        password: &Password,
        out: &mut Vec<Effect>,
    ) {
        let failed = |text: String| Refusal::new(ErrorCode::LOGIN_FAILED, text);
        if !self.origin.is_private() && !ctx.logins.allow_plaintext {
            return refuse(
                out,
                failed(
                    "passwords are not accepted over plaintext from another host; connect \
                     with TLS (the password was not checked)"
                        .to_owned(),
                ),
            );
        }
        if validate_nick(nick).is_err() {
            return refuse(
                out,
                failed("login failed: no such account or wrong password".to_owned()),
            );
        }
        let folded = fold(nick).into_owned();
        let addr = self.origin.addr;
        if let Err(wait) = ctx.logins.throttle.check(&folded, addr, ctx.now) {
            ctx.stats.count_login_throttled();
            // A guess during the wait is someone not waiting: read such a connection at
            // one guess a second.
            out.push(Effect::Charge(THROTTLED_LOGIN_COST));
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return refuse(
                out,
                failed(format!(
                    "too many failed logins; try again in {secs} s (the password was not checked)"
                )),
            );
        }
        if !ctx.logins.store.current().verify(&folded, password) {
            ctx.logins.throttle.failed(&folded, addr, ctx.now);
            ctx.stats.count_login_failure();
            tracing::info!(account = %folded, peer = %addr, "login failed");
            return refuse(
                out,
                failed("login failed: no such account or wrong password".to_owned()),
            );
        }
        ctx.logins.throttle.succeeded(&folded);
        tracing::debug!(account = %folded, peer = %addr, "logged in");
        self.account = Some(folded);
        self.set_nick(ctx, nick, out);
    }
}
