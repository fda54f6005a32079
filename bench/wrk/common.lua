-- Shared by every scenario script: parameters, per-thread counters, status-code histogram and a
-- JSON summary line ("BENCH_JSON {...}") that bench/run.py parses. Scenario scripts define request().
--
-- Usage: wrk ... -s bench/wrk/<scenario>.lua http://127.0.0.1:PORT -- <params.lua> <run tag> [extra]
-- <params.lua> is written by bench/run.py and returns a table (n, types, relationships, templates...).

P = nil          -- parameters (per thread)
ARGS = {}        -- the arguments after "--"
tid = 0          -- thread number, set by setup()
statuses = {}    -- status code -> count (per thread)
first_error = "" -- body of the first non-2xx answer, for the report

JSON_HEADERS = nil
GET_HEADERS = nil

local threads = {}
local next_tid = 0

function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
  table.insert(threads, thread)
end

function init(args)
  ARGS = args
  P = dofile(args[1])
  math.randomseed(os.time() * 1000 + tid * 7919 + (P.seed or 0))
  JSON_HEADERS = {["Content-Type"] = "application/json", ["Link"] = P.link}
  GET_HEADERS = {["Accept"] = "application/json", ["Link"] = P.link}
  if on_init then on_init(args) end
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 300 and first_error == "" and body then
    first_error = string.sub(body, 1, 300)
  end
end

function urlencode(s)
  return (string.gsub(s, "[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function random_id()
  return P.id_prefix .. math.random(0, P.n - 1)
end

local function jstr(s)
  s = string.gsub(s, '[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. s .. '"'
end

function done(summary, latency, requests)
  local hist, err = {}, ""
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if s then for code, count in pairs(s) do hist[code] = (hist[code] or 0) + count end end
    local e = t:get("first_error")
    if e and e ~= "" and err == "" then err = e end
  end
  local parts = {}
  for code, count in pairs(hist) do table.insert(parts, string.format('"%d": %d', code, count)) end
  local pct = {}
  for _, p in ipairs({50, 90, 95, 99, 99.9}) do
    table.insert(pct, string.format('"%s": %d', tostring(p), latency:percentile(p)))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}, "latency_us": {%s, "mean": %.1f, "max": %d}, ' ..
    '"statuses": {%s}, "first_error": %s}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(pct, ", "), latency.mean, latency.max, table.concat(parts, ", "), jstr(err)))
end
