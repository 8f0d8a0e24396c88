-- POST a progress update for each player of BENCH_PLAYERS_FILE in turn (one game, one API
-- key), each with an idempotency key of its own (BENCH_RUN keeps runs apart).
local players = {}
local n, i = 0, 0
local game, key, run

function init(args)
  for line in io.lines(os.getenv("BENCH_PLAYERS_FILE")) do
    n = n + 1; players[n] = line
  end
  game = os.getenv("BENCH_GAME")
  key = os.getenv("BENCH_KEY")
  run = os.getenv("BENCH_RUN")
end

function request()
  i = i + 1
  local player = players[(i - 1) % n + 1]
  local body = '{"pointsDelta":' .. (i % 50 + 1) .. ',"experienceDelta":3,"stats":{"kills":1},'
    .. '"idempotencyKey":"' .. run .. '-' .. i .. '"}'
  return wrk.format(
    "POST",
    "/api/v1/games/" .. game .. "/players/" .. player .. "/progress",
    {["Content-Type"] = "application/json", ["X-API-Key"] = key},
    body
  )
end
