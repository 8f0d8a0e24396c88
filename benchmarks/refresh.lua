-- POST /api/v1/auth/refresh, each refresh token used exactly once: a queue of live tokens
-- (one per session, from BENCH_TOKENS_FILE); each response's new token joins the queue.
local tokens = {}
local head, tail = 1, 0

function init(args)
  for line in io.lines(os.getenv("BENCH_TOKENS_FILE")) do
    if line ~= "" then tail = tail + 1; tokens[tail] = line end
  end
end

function request()
  local token = tokens[head] or "queue-ran-dry"
  tokens[head] = nil
  head = head + 1
  return wrk.format("POST", "/api/v1/auth/refresh", {["Content-Type"] = "application/json"},
                    '{"refreshToken":"' .. token .. '"}')
end

function response(status, headers, body)
  local token = string.match(body, '"refreshToken":"([^"]+)"')
  if token then tail = tail + 1; tokens[tail] = token end
end
