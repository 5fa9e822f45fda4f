-- wrk script for bench/run's `bearer-1000` scenario: every request carries a different valid token.
--
--   wrk -t2 -c32 -d10s --latency -s bench/tokens.lua URL -- TOKENS_FILE THREADS
--
-- TOKENS_FILE holds one access token a line. Each thread reads it once (in init) and cycles through
-- the tokens round robin, one token per request. The requests are formatted up front, so the
-- per-request Lua cost is a table lookup, as close as wrk gets to its static-request speed.
-- THREADS is only used to start each thread at a different place in the list, so the threads do not
-- send the same token at the same moment.

local next_id = 0

-- Runs in wrk's main Lua state, once per thread, before that thread's init.
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

local requests = {}
local n = 0
local i = 0

function init(args)
  local path = args[1]
  if not path then
    error("usage: wrk ... -s tokens.lua URL -- TOKENS_FILE [THREADS]")
  end
  local threads = tonumber(args[2]) or 1
  -- wrk.headers holds the -H headers and Host; keep them, add Authorization.
  local headers = {}
  for k, v in pairs(wrk.headers) do
    headers[k] = v
  end
  for token in io.lines(path) do
    if token ~= "" then
      headers["Authorization"] = "Bearer " .. token
      n = n + 1
      requests[n] = wrk.format(nil, nil, headers)
    end
  end
  if n == 0 then
    error("no tokens in " .. path)
  end
  i = ((id or 0) * math.floor(n / threads)) % n
end

function request()
  i = i % n + 1
  return requests[i]
end
