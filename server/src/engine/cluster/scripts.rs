//! The Lua scripts that make each cluster step atomic in Redis (see `keys` for the
//! names). Ids are nanosecond-sized integers, beyond what Lua's numbers hold exactly,
//! so scripts keep them as decimal strings: `INCR` counts, `GET` reads the exact
//! value back, and [`LESS`] compares two of them.

use redis::Script;

/// Compares two decimal strings without leading zeros as numbers.
const LESS: &str =
    "local function less(a, b) if #a ~= #b then return #a < #b end return a < b end\n";

/// Claims a nick. KEYS: nick key, this node's nick set, the connection's who key,
/// this node's user set. ARGV: the owner record, the owner prefix (`NODE|W.S.G|`), the
/// connection's old nick key (or `""`), its who record, its owner (`NODE|W.S.G`). A
/// nick held by another connection is refused (0); the old nick is released when
/// this connection held it. Returns 1 on success.
pub(super) fn claim() -> Script {
    Script::new(
        r"
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, #ARGV[2]) ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('SET', KEYS[3], ARGV[4])
redis.call('SADD', KEYS[4], ARGV[5])
if ARGV[3] ~= '' and ARGV[3] ~= KEYS[1] then
  local old = redis.call('GET', ARGV[3])
  if old and string.sub(old, 1, #ARGV[2]) == ARGV[2] then
    redis.call('DEL', ARGV[3])
    redis.call('SREM', KEYS[2], ARGV[3])
  end
end
return 1
",
    )
}

/// Forgets a connection: releases its nick if it holds it. KEYS: nick key (or the
/// who key again when it claimed none), this node's nick set, its who key, this
/// node's user set. ARGV: the owner prefix, the owner.
pub(super) fn release() -> Script {
    Script::new(
        r"
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, #ARGV[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], KEYS[1])
end
redis.call('DEL', KEYS[3])
redis.call('SREM', KEYS[4], ARGV[2])
return 1
",
    )
}

/// Private-chat state by owner, in Lua: `next_chat` hands out a chat number, `start`
/// begins the chat of `a` and `b`
/// (their other requests end: `{to, by, declined}` triples go to `ended`), `finish`
/// ends a user's chat and requests and returns `{partner, chat, withdrawn,
/// {declined...}}` (`''` and `'0'` for none).
const CHATS: &str = r"
local P = ARGV[1]
local function pc(o) return P .. 'pc:' .. o end
local function askers(o) return P .. 'pc:' .. o .. ':askers' end
local function start(a, b, chat, ended)
  for _, pair in ipairs({{a, b}, {b, a}}) do
    local me, other = pair[1], pair[2]
    local asked = redis.call('HGET', pc(me), 'asked')
    redis.call('HDEL', pc(me), 'asked')
    redis.call('HSET', pc(me), 'partner', other, 'chat', chat)
    if asked and asked ~= other then
      redis.call('SREM', askers(asked), me)
      table.insert(ended, {asked, me, '0'})
    end
    for _, asker in ipairs(redis.call('SMEMBERS', askers(me))) do
      if asker ~= other then
        redis.call('HDEL', pc(asker), 'asked')
        table.insert(ended, {asker, me, '1'})
      end
    end
    redis.call('DEL', askers(me))
  end
end
-- Chat numbers start after the time the counter was made (ARGV[4], ns), as room ids
-- do, so a number is never reused even if Redis lost the counter; kept as strings.
local function next_chat()
  redis.call('SET', P .. 'chats', ARGV[4], 'NX')
  redis.call('INCR', P .. 'chats')
  return redis.call('GET', P .. 'chats')
end
local function finish(me)
  local partner = redis.call('HGET', pc(me), 'partner')
  local chat = redis.call('HGET', pc(me), 'chat')
  local withdrawn = redis.call('HGET', pc(me), 'asked')
  local declined = redis.call('SMEMBERS', askers(me))
  redis.call('DEL', pc(me), askers(me))
  if partner then redis.call('HDEL', pc(partner), 'partner', 'chat') end
  if withdrawn then redis.call('SREM', askers(withdrawn), me) end
  for _, a in ipairs(declined) do redis.call('HDEL', pc(a), 'asked') end
  return {partner or '', chat or '0', withdrawn or '', declined}
end
";

/// Asks for a private chat, or accepts the peer's request. ARGV: the key prefix, the
/// asker's owner, the peer's owner, now (ns). Returns `{'in-chat'}`, `{'busy'}`, `{'requested',
/// withdrawn}` or `{'started', chat, ended}`.
pub(super) fn chat_request() -> Script {
    Script::new(&format!(
        r"{CHATS}
local me, peer = ARGV[2], ARGV[3]
if redis.call('HEXISTS', pc(me), 'partner') == 1 then return {{'in-chat'}} end
local partner = redis.call('HGET', pc(peer), 'partner')
local asked = redis.call('HGET', pc(peer), 'asked')
if not partner and asked == me then
  local ended = {{}}
  local chat = next_chat()
  start(me, peer, chat, ended)
  return {{'started', chat, ended}}
end
if partner or (asked and asked ~= me) then return {{'busy'}} end
for _, a in ipairs(redis.call('SMEMBERS', askers(peer))) do
  if a ~= me then return {{'busy'}} end
end
local previous = redis.call('HGET', pc(me), 'asked')
redis.call('HSET', pc(me), 'asked', peer)
local withdrawn = ''
if previous and previous ~= peer then
  redis.call('SREM', askers(previous), me)
  withdrawn = previous
end
redis.call('SADD', askers(peer), me)
return {{'requested', withdrawn}}
"
    ))
}

/// Accepts the peer's pending request. ARGV: the key prefix, the accepting owner, the
/// peer's owner, now (ns). Returns `{'in-chat'}`, `{'not-asked'}` or `{'started', chat, ended}`.
pub(super) fn chat_accept() -> Script {
    Script::new(&format!(
        r"{CHATS}
local me, peer = ARGV[2], ARGV[3]
if redis.call('HEXISTS', pc(me), 'partner') == 1 then return {{'in-chat'}} end
if redis.call('HGET', pc(peer), 'asked') ~= me or redis.call('HEXISTS', pc(peer), 'partner') == 1 then
  return {{'not-asked'}}
end
local ended = {{}}
local chat = next_chat()
start(me, peer, chat, ended)
return {{'started', chat, ended}}
"
    ))
}

/// Ends a user's private chat and pending requests. ARGV: the key prefix, the owner.
/// Returns `{partner, chat, withdrawn, {declined...}}`.
pub(super) fn chat_end() -> Script {
    Script::new(&format!(
        "{CHATS}
return finish(ARGV[2])
"
    ))
}

/// Joins a room. KEYS: members, name, seq, base, log, the room set, this node's room
/// set. ARGV: member field, nick, display name, now (ns), folded name, since (or
/// `""`), the room's channel, the largest room whose members are told. A room seen for
/// the first time starts its ids after now. The members are told on the room's channel
/// (`J` event) when the room is small enough. Returns `{members, name, last, log}`, or
/// `{-1, name, last}` when `since` is an id the room never handed out (nothing changes
/// then).
pub(super) fn join() -> Script {
    Script::new(&format!(
        r"{LESS}
redis.call('SET', KEYS[2], ARGV[3], 'NX')
if redis.call('SET', KEYS[3], ARGV[4], 'NX') then redis.call('SET', KEYS[4], ARGV[4]) end
local last = redis.call('GET', KEYS[3])
local base = redis.call('GET', KEYS[4]) or last
local name = redis.call('GET', KEYS[2])
if ARGV[6] ~= '' and (less(last, ARGV[6]) or less(ARGV[6], base)) then
  return {{-1, name, last}}
end
local new = redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[6], ARGV[5])
redis.call('SADD', KEYS[7], ARGV[5])
local members = redis.call('HLEN', KEYS[1])
if new == 1 and members <= tonumber(ARGV[8]) then
  redis.call('PUBLISH', ARGV[7], 'J\n' .. ARGV[1] .. '\n' .. members .. '\n' .. last .. '\n' .. ARGV[2])
end
local log = {{}}
if ARGV[6] ~= '' then log = redis.call('LRANGE', KEYS[5], 0, -1) end
return {{members, name, last, log}}
"
    ))
}

/// Leaves a room. KEYS: members, the room set, this node's room set. ARGV: member
/// field, folded name, `1` if no member of this node is left in it, the room's
/// channel, the largest room whose members are told. The members are told on the
/// room's channel (`L` event) when the room is small enough. Returns the members
/// left.
pub(super) fn leave() -> Script {
    Script::new(
        r"
local nick = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
if ARGV[3] == '1' then redis.call('SREM', KEYS[3], ARGV[2]) end
local left = redis.call('HLEN', KEYS[1])
if left == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
if nick and left < tonumber(ARGV[5]) then
  redis.call('PUBLISH', ARGV[4], 'L\n' .. ARGV[1] .. '\n' .. left .. '\n0\n' .. nick)
end
return left
",
    )
}

/// Says something in a room: stamps the next id, keeps the message and publishes it,
/// in one step, so the channel carries a room's messages in id order. KEYS: seq, base,
/// log. ARGV: channel, now (ns), from, text, most messages kept. Returns the id.
pub(super) fn publish() -> Script {
    Script::new(
        r"
if redis.call('SET', KEYS[1], ARGV[2], 'NX') then redis.call('SET', KEYS[2], ARGV[2]) end
redis.call('INCR', KEYS[1])
local id = redis.call('GET', KEYS[1])
local envelope = id .. '\n' .. ARGV[2] .. '\n' .. ARGV[3] .. '\n' .. ARGV[4]
local keep = tonumber(ARGV[5])
if keep > 0 then
  redis.call('RPUSH', KEYS[3], envelope)
  redis.call('LTRIM', KEYS[3], -keep, -1)
end
redis.call('PUBLISH', ARGV[1], envelope)
return id
",
    )
}

/// Removes what a dead node held: its nicks, its users' memberships (the rooms'
/// members are told as for a leave) and their private chats. KEYS: the node set, the
/// node's nick set, the node's room set, the node's user set. ARGV: the key prefix,
/// the node's name, the largest room whose members are told. Returns `{removed,
/// endings}`, an ending being `{nick, partner, chat, withdrawn, {declined...}}` for
/// each user whose chat or requests ended.
pub(super) fn bury() -> Script {
    Script::new(&format!(
        r"{CHATS}
local endings = {{}}
for _, owner in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  local who = redis.call('GET', P .. 'who:' .. owner)
  local ending = finish(owner)
  if ending[1] ~= '' or ending[3] ~= '' or #ending[4] > 0 then
    local nick = ''
    if who then nick = string.sub(who, 3) end
    table.insert(endings, {{owner, nick, ending[1], ending[2], ending[3], ending[4]}})
  end
  redis.call('DEL', P .. 'who:' .. owner)
end
local mine = ARGV[2] .. '|'
for _, key in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local cur = redis.call('GET', key)
  if cur and string.sub(cur, 1, #mine) == mine then redis.call('DEL', key) end
end
local removed = 0
for _, room in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local members = P .. 'room:' .. room .. ':members'
  for _, field in ipairs(redis.call('HKEYS', members)) do
    if string.sub(field, 1, #mine) == mine then
      local nick = redis.call('HGET', members, field)
      redis.call('HDEL', members, field)
      removed = removed + 1
      local left = redis.call('HLEN', members)
      if nick and left < tonumber(ARGV[3]) then
        redis.call('PUBLISH', P .. 'room:' .. room, 'L\n' .. field .. '\n' .. left .. '\n0\n' .. nick)
      end
    end
  end
  if redis.call('HLEN', members) == 0 then redis.call('SREM', P .. 'rooms', room) end
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('SREM', KEYS[1], ARGV[2])
return {{removed, endings}}
"
    ))
}
