-- POST /api/v1/auth/login, cycling through the accounts in BENCH_ACCOUNTS_FILE (one email
-- per line, all with the password BENCH_PASSWORD): many players logging in, not one
-- account hammered (which the login throttle would rightly turn away).
local emails = {}
local n = 0

function init(args)
  for line in io.lines(os.getenv("BENCH_ACCOUNTS_FILE")) do
    if line ~= "" then table.insert(emails, line) end
  end
end

function request()
  n = n + 1
  local email = emails[(n % #emails) + 1]
  return wrk.format("POST", "/api/v1/auth/login", {["Content-Type"] = "application/json"},
                    '{"email":"' .. email .. '","password":"' .. os.getenv("BENCH_PASSWORD") .. '"}')
end
