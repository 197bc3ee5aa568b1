//! The Lua scripts of the Redis journal. Each runs atomically in Redis.
//!
//! Keys: `KEYS[1]` the stream, then as listed. Task-id keys are
//! `<ARGV prefix><task id>` and hold `q:<seq>` while the task's entry is
//! queued, `d` once done.

/// Claims the task id (when there is one) and appends the entry under
/// `<seq>-0`, then reads it into this consumer's pending list, all in one
/// step: a claimed id always has its event queued and owned.
///
/// KEYS: stream, seq counter, [task-id key]. ARGV: group, consumer, task
/// id (or ""), body, claim ttl ms. Answers the seq, or -1 for a duplicate.
pub(super) const APPEND: &str = r"
if KEYS[3] and redis.call('EXISTS', KEYS[3]) == 1 then
  return -1
end
local seq = redis.call('INCR', KEYS[2])
local id = seq .. '-0'
redis.call('XADD', KEYS[1], id, 'task', ARGV[3], 'body', ARGV[4])
if KEYS[3] then
  redis.call('SET', KEYS[3], 'q:' .. seq, 'PX', ARGV[5])
end
redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', 100, 'STREAMS', KEYS[1], '>')
return seq
";

/// Acknowledges and deletes the entry; marks its task id done (ARGV[4] =
/// "done") or forgets it if it still names this entry (ARGV[4] =
/// "withdraw").
///
/// KEYS: stream. ARGV: group, seq, task-id key prefix, mode, ttl ms.
pub(super) const FINISH: &str = r"
local id = ARGV[2] .. '-0'
local found = redis.call('XRANGE', KEYS[1], id, id)
if found[1] then
  local fields = found[1][2]
  local task = ''
  for i = 1, #fields, 2 do
    if fields[i] == 'task' then task = fields[i + 1] end
  end
  if task ~= '' then
    local key = ARGV[3] .. task
    if ARGV[4] == 'done' then
      redis.call('SET', key, 'd', 'PX', ARGV[5])
    elseif redis.call('GET', key) == 'q:' .. ARGV[2] then
      redis.call('DEL', key)
    end
  end
end
redis.call('XACK', KEYS[1], ARGV[1], id)
redis.call('XDEL', KEYS[1], id)
return 1
";

/// Moves an entry to the dead-letter stream (once), acknowledges and
/// deletes it, and forgets its task id if it still names this entry (so a
/// replay, or the provider's next push, can run it again).
///
/// KEYS: stream, dead-letter stream, dead-letter index (hash seq -> id).
/// ARGV: group, seq, task-id key prefix, task, body, kind, reason,
/// attempts, failed at (ms since the epoch).
pub(super) const DEAD_LETTER: &str = r"
local id = ARGV[2] .. '-0'
if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 0 then
  local dead = redis.call('XADD', KEYS[2], '*', 'seq', ARGV[2], 'task', ARGV[4], 'body', ARGV[5],
    'kind', ARGV[6], 'reason', ARGV[7], 'attempts', ARGV[8], 'at', ARGV[9])
  redis.call('HSET', KEYS[3], ARGV[2], dead)
end
redis.call('XACK', KEYS[1], ARGV[1], id)
redis.call('XDEL', KEYS[1], id)
if ARGV[4] ~= '' then
  local key = ARGV[3] .. ARGV[4]
  if redis.call('GET', key) == 'q:' .. ARGV[2] then
    redis.call('DEL', key)
  end
end
return 1
";

/// Forgets a dead letter.
///
/// KEYS: dead-letter stream, dead-letter index. ARGV: seq.
pub(super) const REMOVE_DEAD_LETTER: &str = r"
local dead = redis.call('HGET', KEYS[2], ARGV[1])
if dead then
  redis.call('XDEL', KEYS[1], dead)
  redis.call('HDEL', KEYS[2], ARGV[1])
end
return 1
";

/// Keeps this consumer's entries alive: resets the idle time of each listed
/// entry that is still in this consumer's pending list (without counting a
/// delivery). Answers the ids that are not (taken over by another
/// consumer, or gone).
///
/// KEYS: stream. ARGV: group, consumer, ids...
pub(super) const HEARTBEAT: &str = r"
local lost = {}
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if pending[1] and pending[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
";

/// Takes over entries idle longer than the bound (their consumer died):
/// `XAUTOCLAIM` from the cursor, then each entry delivered more than the
/// bound goes to the dead-letter stream instead (acknowledged, deleted, its
/// task id forgotten).
///
/// KEYS: stream, dead-letter stream, dead-letter index. ARGV: group,
/// consumer, min idle ms, count, max deliveries, task-id key prefix, now
/// ms, cursor. Answers {next cursor, entries taken, seqs dead-lettered}.
pub(super) const TAKE_OVER: &str = r"
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[8], 'COUNT', ARGV[4])
local taken = {}
local dead = {}
for _, entry in ipairs(claimed[2]) do
  local id = entry[1]
  local fields = entry[2]
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  local deliveries = 0
  if pending[1] then deliveries = pending[1][4] end
  if deliveries > tonumber(ARGV[5]) then
    local task, body = '', ''
    for i = 1, #fields, 2 do
      if fields[i] == 'task' then task = fields[i + 1] end
      if fields[i] == 'body' then body = fields[i + 1] end
    end
    local seq = string.match(id, '^(%d+)')
    if redis.call('HEXISTS', KEYS[3], seq) == 0 then
      local reason = 'delivered ' .. deliveries .. ' times and never acknowledged: every consumer that took it died'
      local letter = redis.call('XADD', KEYS[2], '*', 'seq', seq, 'task', task, 'body', body,
        'kind', 'error', 'reason', reason, 'attempts', deliveries, 'at', ARGV[7])
      redis.call('HSET', KEYS[3], seq, letter)
    end
    redis.call('XACK', KEYS[1], ARGV[1], id)
    redis.call('XDEL', KEYS[1], id)
    if task ~= '' then
      local key = ARGV[6] .. task
      if redis.call('GET', key) == 'q:' .. seq then
        redis.call('DEL', key)
      end
    end
    table.insert(dead, seq)
  else
    table.insert(taken, entry)
  end
end
return {claimed[1], taken, dead}
";
