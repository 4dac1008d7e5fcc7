-- Helpers shared by every Dibs registry script.  The Python side puts this
-- file in front of each operation's script, so each operation still runs as
-- ONE script: Redis runs it to its end before any other command, which is
-- what makes every registry call atomic across processes.
--
-- Every script gets the same first arguments, then one JSON object:
--   ARGV[1] key prefix          ARGV[2] now, seconds since the epoch
--   ARGV[3] grace seconds       ARGV[4] claim lifetime seconds
--   ARGV[5] claims per user     ARGV[6] id of the calling process
--   ARGV[7] the operation's arguments, as JSON
--
-- Keys (P is the prefix).  Their names are computed here rather than passed
-- in KEYS because a connection's page is only known once its record is
-- read; so the scripts need one Redis (or a primary with replicas), not a
-- Redis Cluster.
--   P.."conn:"..sid       hash   user, name, state, process, page?, href?
--   P.."connections"      set    every connection's sid
--   P.."process:"..id     set    sids of the connections a process serves
--   P.."processes"        zset   process id -> its last heartbeat, by Redis's clock
--   P.."viewers:"..page   hash   user -> viewer (JSON)
--   P.."claims:"..page    hash   action -> claim (JSON)
--   P.."hrefs:"..page     hash   legacy href -> connections that sent it
--   P.."pages"            set    keys of pages with viewers or claims
--   P.."deadlines"        zset   [kind, page, name, token] (JSON) -> due time
--   P.."token"            string the last fencing token granted
--   P.."version"          string the last version stamped on changed views
--   P.."version:"..page   string the version of a page's current view
--
-- Times that decide expiry are kept as "%.17g" strings, which give back the
-- very same double, because cjson writes numbers with 14 digits only; for
-- the same reason fencing tokens (16 digits) travel as strings.

local P = ARGV[1]
local NOW = tonumber(ARGV[2])
local GRACE = tonumber(ARGV[3])
local CLAIM_TTL = tonumber(ARGV[4])
local MAX_CLAIMS = tonumber(ARGV[5])
local PROCESS = ARGV[6]
local ARGS = cjson.decode(ARGV[7])

local STATE_RANK = {editing = 1, viewing = 2, idle = 3}

local pages = {}    -- page key -> page loaded by this script
local dirty = {}    -- page key -> true: save it before returning
local changed = {}  -- page key -> true: its view changed, report it

local function exact(seconds)
  return string.format("%.17g", seconds)
end

local function millis(seconds)
  return math.floor(seconds * 1000)
end

-- Redis's own clock, in microseconds: the one clock every process shares.
local function server_micros()
  local time = redis.call("TIME")
  return tonumber(time[1]) * 1000000 + tonumber(time[2])
end

-- Heartbeats are stamped and judged by Redis's clock, so that neither a
-- skew between hosts nor a call that waited long on its way (its ``now``
-- already old) can make a live process look dead.
local function beat()
  local clock = server_micros() / 1000000
  redis.call("ZADD", P .. "processes", exact(clock), PROCESS)
  return clock
end

local function touch(key, visible)
  dirty[key] = true
  if visible then
    changed[key] = true
  end
end

-- Pages.

local function load_page(key)
  if pages[key] then
    return pages[key]
  end

  local page = {viewers = {}, claims = {}, hrefs = {}}
  local raw = redis.call("HGETALL", P .. "viewers:" .. key)
  for i = 1, #raw, 2 do
    local viewer = cjson.decode(raw[i + 1])
    viewer.away_until = tonumber(viewer.away_until)
    page.viewers[raw[i]] = viewer
  end
  raw = redis.call("HGETALL", P .. "claims:" .. key)
  for i = 1, #raw, 2 do
    local claim = cjson.decode(raw[i + 1])
    claim.expires_at = tonumber(claim.expires_at)
    claim.orphaned_at = tonumber(claim.orphaned_at)
    page.claims[raw[i]] = claim
  end
  raw = redis.call("HGETALL", P .. "hrefs:" .. key)
  for i = 1, #raw, 2 do
    page.hrefs[raw[i]] = tonumber(raw[i + 1])
  end

  pages[key] = page
  return page
end

local function save_page(key)
  local page = pages[key]
  local viewers_key = P .. "viewers:" .. key
  local claims_key = P .. "claims:" .. key
  local hrefs_key = P .. "hrefs:" .. key
  redis.call("DEL", viewers_key, claims_key, hrefs_key)

  local empty = true
  for user, viewer in pairs(page.viewers) do
    empty = false
    redis.call("HSET", viewers_key, user, cjson.encode({
      name = viewer.name,
      since = viewer.since,
      tabs = viewer.tabs,
      last_state = viewer.last_state,
      away_until = viewer.away_until and exact(viewer.away_until),
    }))
  end
  for action, claim in pairs(page.claims) do
    empty = false
    redis.call("HSET", claims_key, action, cjson.encode({
      action = claim.action,
      user = claim.user,
      name = claim.name,
      since = claim.since,
      token = claim.token,
      expires_at = exact(claim.expires_at),
      orphaned_at = claim.orphaned_at and exact(claim.orphaned_at),
    }))
  end
  for href, count in pairs(page.hrefs) do
    redis.call("HSET", hrefs_key, href, count)
  end

  if empty then
    redis.call("SREM", P .. "pages", key)
  else
    redis.call("SADD", P .. "pages", key)
  end
end

local function most_active(tabs)
  local best = nil
  for _, state in pairs(tabs) do
    if best == nil or STATE_RANK[state] < STATE_RANK[best] then
      best = state
    end
  end
  return best
end

local function public_claim(claim)
  return {
    action = claim.action,
    user = claim.user,
    name = claim.name,
    since = claim.since,
    token = claim.token,
  }
end

-- The view of a page, ordered as the in-memory registry orders it.
local function view(key)
  local page = load_page(key)
  local viewers, claims, hrefs = {}, {}, {}
  for user, viewer in pairs(page.viewers) do
    local tabs = 0
    for _ in pairs(viewer.tabs) do
      tabs = tabs + 1
    end
    viewers[#viewers + 1] = {
      user = user,
      name = viewer.name,
      state = most_active(viewer.tabs) or viewer.last_state,
      since = viewer.since,
      tabs = tabs,
    }
  end
  for _, claim in pairs(page.claims) do
    claims[#claims + 1] = public_claim(claim)
  end
  for href in pairs(page.hrefs) do
    hrefs[#hrefs + 1] = href
  end

  table.sort(viewers, function(a, b)
    if a.since ~= b.since then
      return a.since < b.since
    end
    return a.user < b.user
  end)
  table.sort(claims, function(a, b)
    if a.since ~= b.since then
      return a.since < b.since
    end
    return a.action < b.action
  end)
  table.sort(hrefs)
  local version = redis.call("GET", P .. "version:" .. key) or "0"
  return {
    page = key, viewers = viewers, claims = claims, hrefs = hrefs, version = version
  }
end

-- Deadlines.  A deadline is only a hint to look again: when it comes due,
-- the entry it names is checked afresh, so a stale one does nothing.

local function schedule(when, kind, key, name, token)
  local entry = cjson.encode({kind, key, name, token})
  redis.call("ZADD", P .. "deadlines", exact(when), entry)
end

-- A released claim's deadlines would otherwise wait out its whole lifetime:
-- one client claiming and releasing in a loop would grow the set for as long.
local function unschedule_claim(key, claim)
  redis.call("ZREM", P .. "deadlines",
    cjson.encode({"lifetime", key, claim.action, claim.token}),
    cjson.encode({"orphan", key, claim.action, claim.token}))
end

local function expire_one(page, kind, name, token, now)
  if kind == "presence" then
    local viewer = page.viewers[name]
    if viewer == nil or next(viewer.tabs) ~= nil or viewer.away_until == nil then
      return false
    end
    if viewer.away_until > now then
      return false
    end
    page.viewers[name] = nil
    return true
  end

  local claim = page.claims[name]
  if claim == nil or claim.token ~= token then
    return false
  end
  if kind == "orphan"
      and (claim.orphaned_at == nil or claim.orphaned_at + GRACE > now) then
    return false
  end
  page.claims[name] = nil
  return true
end

local function expire_due(now)
  local due = redis.call("ZRANGEBYSCORE", P .. "deadlines", "-inf", exact(now))
  for _, entry in ipairs(due) do
    redis.call("ZREM", P .. "deadlines", entry)
    local kind, key, name, token = unpack(cjson.decode(entry))
    if expire_one(load_page(key), kind, name, token, now) then
      touch(key, true)
    end
  end
end

-- Connections.

local function load_connection(sid)
  local raw = redis.call("HGETALL", P .. "conn:" .. sid)
  if #raw == 0 then
    return nil
  end
  local connection = {}
  for i = 1, #raw, 2 do
    connection[raw[i]] = raw[i + 1]
  end
  return connection
end

local function save_connection(sid, connection)
  local key = P .. "conn:" .. sid
  redis.call("DEL", key)
  redis.call("HSET", key,
    "user", connection.user,
    "name", connection.name,
    "state", connection.state,
    "process", connection.process)
  if connection.page then
    redis.call("HSET", key, "page", connection.page)
  end
  if connection.href then
    redis.call("HSET", key, "href", connection.href)
  end
  redis.call("SADD", P .. "connections", sid)
  redis.call("SADD", P .. "process:" .. connection.process, sid)
end

local function forget_connection(sid, connection)
  redis.call("DEL", P .. "conn:" .. sid)
  redis.call("SREM", P .. "connections", sid)
  redis.call("SREM", P .. "process:" .. connection.process, sid)
end

local function attach(sid, connection, key, state, href)
  local page = load_page(key)
  local user = connection.user
  local viewer = page.viewers[user]
  if viewer == nil then
    viewer = {since = millis(NOW), tabs = {}, last_state = "viewing"}
    page.viewers[user] = viewer
  end
  viewer.name = connection.name
  viewer.tabs[sid] = state
  viewer.away_until = nil
  for _, claim in pairs(page.claims) do
    if claim.user == user then
      claim.orphaned_at = nil
    end
  end
  if href then
    page.hrefs[href] = (page.hrefs[href] or 0) + 1
  end

  connection.page = key
  connection.state = state
  connection.href = href
  touch(key, true)
end

-- Take the connection off its page at time ``at``.  When it was the user's
-- last connection there, a dropped one (graceful) leaves the user present
-- for the grace period; their claims wait out the same grace either way.
local function detach(sid, connection, at, graceful)
  local key = connection.page
  local page = load_page(key)
  local user = connection.user
  if connection.href then
    local count = (page.hrefs[connection.href] or 1) - 1
    page.hrefs[connection.href] = count > 0 and count or nil
  end
  connection.page = nil
  connection.href = nil
  touch(key, true)

  local viewer = page.viewers[user]
  if viewer == nil then
    return
  end
  viewer.tabs[sid] = nil
  if next(viewer.tabs) ~= nil then
    return
  end

  if graceful then
    viewer.last_state = connection.state
    viewer.away_until = at + GRACE
    schedule(viewer.away_until, "presence", key, user, "0")
  else
    page.viewers[user] = nil
  end
  for action, claim in pairs(page.claims) do
    if claim.user == user then
      claim.orphaned_at = at
      schedule(at + GRACE, "orphan", key, action, claim.token)
    end
  end
end

-- Change the state of a connection's tab; the page only hears of it when
-- the user's most active state changes.
local function change_state(sid, connection, state)
  local key = connection.page
  local viewer = load_page(key).viewers[connection.user]
  connection.state = state
  if viewer == nil then
    return
  end
  local before = most_active(viewer.tabs)
  viewer.tabs[sid] = state
  touch(key, most_active(viewer.tabs) ~= before)
end

-- Forget a connection that is gone, if it is known; its user stays present
-- on its page for the grace period, counted from ``at``.
local function drop(sid, at)
  local connection = load_connection(sid)
  if connection == nil then
    return
  end
  if connection.page then
    detach(sid, connection, at, true)
  end
  forget_connection(sid, connection)
end

-- Disconnect every connection of a process that stopped beating.  Their
-- grace counts from ``last_beat`` (the last heartbeat, on the caller's
-- clock), the last moment the process was known to be alive, so they are
-- usually gone by the end of the same script.
local function reap(process, last_beat)
  local sids = redis.call("SMEMBERS", P .. "process:" .. process)
  for _, sid in ipairs(sids) do
    drop(sid, last_beat)
  end
  redis.call("DEL", P .. "process:" .. process)
  redis.call("ZREM", P .. "processes", process)
  return #sids
end

-- Results.

-- The version stamped on the views of one call.  It follows Redis's clock in
-- microseconds, like fencing tokens, so that it keeps growing even after
-- Redis lost its data and every process still remembers higher versions.
local function next_version()
  local last = tonumber(redis.call("GET", P .. "version") or "0")
  local version = math.max(last + 1, server_micros())
  local text = string.format("%.0f", version)
  redis.call("SET", P .. "version", text)
  return text
end

local function finish(result)
  for key in pairs(dirty) do
    save_page(key)
  end
  local views = {}
  if next(changed) ~= nil then
    local version = next_version()
    for key in pairs(changed) do
      if redis.call("SISMEMBER", P .. "pages", key) == 1 then
        redis.call("SET", P .. "version:" .. key, version)
      else
        redis.call("DEL", P .. "version:" .. key)
      end
      local page_view = view(key)
      page_view.version = version
      views[#views + 1] = page_view
    end
  end
  return cjson.encode({result = result, views = views})
end

local function refuse(code, details)
  details = details or {}
  details.error = code
  return cjson.encode(details)
end

local function current_connection()
  local connection = load_connection(ARGS.sid)
  if connection == nil or connection.page == nil then
    return nil
  end
  return connection
end

-- The operation follows.
