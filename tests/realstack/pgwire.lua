-- pgmoon's connection sequence, shared by both of Kong's connection paths.
--
-- Kong's start-up path (kong_startup.lua: Lua 5.1, LuaSocket + LuaSec, as root) and its
-- runtime path (kongpg.lua: nginx cosockets in a worker running as `kong`) differ only in
-- the socket and the crypto they are handed; the PostgreSQL side is the same code, so a
-- difference between the two verdicts comes from TLS, never from this file.
--
-- SSLRequest -> 'S' -> tls(sock) (the caller's handshake) -> StartupMessage -> auth
-- (none, or SCRAM-SHA-256[-PLUS] with the password) -> success ONLY on AuthenticationOk.
-- SCRAM follows pgmoon 2.3.2.0 (Kong/pgmoon): SCRAM-SHA-256-PLUS with tls-server-end-point
-- whenever the server offers it over TLS, and "authentication exchange unsuccessful" when
-- the server's answer to the proof carries no matching signature (a wrong password).
-- Error texts are pgmoon's: server errors as "SEVERITY: message", receive failures as
-- "receive_message: failed to get type: <err>".
--
-- Plain Lua 5.1 arithmetic only (no `bit` library there).

local char, byte, concat, floor = string.char, string.byte, table.concat, math.floor

local _M = {}

local function be32(n)
  return char(floor(n / 16777216) % 256, floor(n / 65536) % 256, floor(n / 256) % 256, n % 256)
end

local function rd32(s, i)
  local a, b, c, d = byte(s, i, i + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

local function xor_byte(x, y)
  local r, p = 0, 1
  for _ = 1, 8 do
    if x % 2 ~= y % 2 then r = r + p end
    x, y, p = floor(x / 2), floor(y / 2), p * 2
  end
  return r
end

local function xor(a, b)
  local out = {}
  for i = 1, #a do out[i] = char(xor_byte(byte(a, i), byte(b, i))) end
  return concat(out)
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

function _M.b64encode(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = byte(s, i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local q = { floor(n / 262144) % 64, floor(n / 4096) % 64, floor(n / 64) % 64, n % 64 }
    out[#out + 1] = B64:sub(q[1] + 1, q[1] + 1) .. B64:sub(q[2] + 1, q[2] + 1)
        .. (b and B64:sub(q[3] + 1, q[3] + 1) or "=") .. (c and B64:sub(q[4] + 1, q[4] + 1) or "=")
  end
  return concat(out)
end

function _M.b64decode(s)
  local out, bits, n = {}, 0, 0
  for ch in s:gmatch("[^=]") do
    n = n * 64 + (B64:find(ch, 1, true) - 1)
    bits = bits + 6
    if bits >= 8 then
      bits = bits - 8
      local p = 2 ^ bits
      out[#out + 1] = char(floor(n / p))
      n = n % p
    end
  end
  return concat(out)
end

local function read_msg(sock)
  local head, err = sock:receive(5)
  if not head then return nil, "receive_message: failed to get type: " .. tostring(err) end
  local n = rd32(head, 2) - 4
  if n == 0 then return head:sub(1, 1), "" end
  local body, err2 = sock:receive(n)
  if not body then return nil, "receive_message: failed to get type: " .. tostring(err2) end
  return head:sub(1, 1), body
end

-- pgmoon's parse_error: "SEVERITY: message"; the SQLSTATE goes in `code` for the caller.
local function parse_error(body)
  local f = {}
  for k, v in body:gmatch("(%Z)(%Z*)%z") do f[k] = v end
  return (f.S or "?") .. ": " .. (f.M or "?"), f.C
end

local function send(sock, tag, payload)
  return sock:send(tag .. be32(#payload + 4) .. payload)
end

-- SCRAM-SHA-256(-PLUS). `crypto` has hmac(key, data), sha256(data), pbkdf2(pass, salt, iter),
-- random(n) and cbind(sock) -> the tls-server-end-point hash of the server certificate.
local function scram(sock, mechanisms, password, crypto, tls)
  if not password then return nil, "missing password, required for connect" end
  local offered = "\0" .. mechanisms
  local plus = tls and offered:find("\0SCRAM-SHA-256-PLUS\0", 1, true)
  if not plus and not offered:find("\0SCRAM-SHA-256\0", 1, true) then
    return nil, "unsupported SCRAM mechanism name: " .. mechanisms:gsub("%z", " ")
  end
  local gs2, mech, cbind_input = "n,,", "SCRAM-SHA-256", "n,,"
  if plus then
    local data, err = crypto.cbind(sock)
    if not data then return nil, "channel binding: " .. tostring(err) end
    gs2, mech = "p=tls-server-end-point,,", "SCRAM-SHA-256-PLUS"
    cbind_input = gs2 .. data
  end
  local cnonce = _M.b64encode(crypto.random(18))
  local first_bare = "n=,r=" .. cnonce
  local first = gs2 .. first_bare
  send(sock, "p", mech .. "\0" .. be32(#first) .. first)

  local t, body = read_msg(sock)
  if not t then return nil, body end
  if t == "E" then return nil, (parse_error(body)) end
  if t ~= "R" or rd32(body, 1) ~= 11 then return nil, "server_first_message error: " .. body end
  local server_first = body:sub(5)
  local nonce, salt, iters = server_first:match("^r=([^,]+),s=([^,]+),i=(%d+)")
  if not nonce or nonce:sub(1, #cnonce) ~= cnonce then return nil, "malformed server message (nonce)" end
  if tonumber(iters) < 4096 then return nil, "the iteration-count sent by the server is less than 4096" end

  local salted = crypto.pbkdf2(password, _M.b64decode(salt), tonumber(iters))
  local client_key = crypto.hmac(salted, "Client Key")
  local final_bare = "c=" .. _M.b64encode(cbind_input) .. ",r=" .. nonce
  local auth_message = first_bare .. "," .. server_first .. "," .. final_bare
  local proof = xor(client_key, crypto.hmac(crypto.sha256(client_key), auth_message))
  send(sock, "p", final_bare .. ",p=" .. _M.b64encode(proof))

  t, body = read_msg(sock)
  if not t then return nil, body end
  local expected = _M.b64encode(crypto.hmac(crypto.hmac(salted, "Server Key"), auth_message))
  if body:match("v=([^,%z]+)") ~= expected then
    -- pgmoon reads the server's ErrorResponse as if it were SASLFinal and says only this
    return nil, "authentication exchange unsuccessful", t == "E" and select(2, parse_error(body)) or nil
  end
  return true, mech
end

-- One connection as pgmoon makes it. `s`: ssl, required, password; `o`: user, database.
-- `tls(sock)` does the handshake and returns the (possibly new) socket or nil, err.
-- Returns a table: ok, stage, message, row, mechanism, server_error.
function _M.connect(sock, s, o, tls, crypto)
  local on_tls = false
  if s.ssl then
    sock:send(be32(8) .. be32(80877103)) -- SSLRequest
    local answer, rerr = sock:receive(1)
    if answer == "S" then
      local wrapped, err, stage = tls(sock)
      if not wrapped then return { ok = false, stage = stage or "tls", message = tostring(err) } end
      sock, on_tls = wrapped, true
    elseif s.required then
      return { ok = false, stage = "sslrequest", message = "the server does not support SSL connections" }
    elseif not answer then
      return { ok = false, stage = "sslrequest", message = tostring(rerr) }
    end
  end

  local startup = be32(196608) .. "user\0" .. o.user .. "\0database\0" .. o.database ..
      "\0application_name\0kong-equivalent\0\0"
  local ok, err = sock:send(be32(#startup + 4) .. startup)
  if not ok then return { ok = false, stage = "startup", message = "send: " .. tostring(err) } end

  local authenticated, mechanism = false, nil
  while true do
    local t, body = read_msg(sock)
    if not t then return { ok = false, stage = authenticated and "query" or "startup", message = body } end
    if t == "E" then
      local msg, code = parse_error(body)
      return { ok = false, stage = authenticated and "query" or "auth", message = msg, server_error = code }
    end
    if t == "R" then
      local code = rd32(body, 1)
      if code == 0 then
        authenticated = true
      elseif code == 10 then
        local sok, serr, server_error = scram(sock, body:sub(5), s.password, crypto, on_tls)
        if not sok then return { ok = false, stage = "auth", message = serr, server_error = server_error } end
        mechanism = serr
      else
        return { ok = false, stage = "auth", message = "don't know how to auth: " .. code }
      end
    elseif t == "Z" then
      break
    end
  end
  if not authenticated then return { ok = false, stage = "auth", message = "ReadyForQuery without AuthenticationOk" } end

  -- Kong's own first query at start-up, then what the server saw of this session.
  local q = "SHOW server_version_num; SELECT concat_ws('|', ssl::text, coalesce(version, ''), " ..
      "coalesce(client_dn, ''), current_user) FROM pg_stat_ssl WHERE pid = pg_backend_pid()\0"
  send(sock, "Q", q)
  local row
  while true do
    local t, body = read_msg(sock)
    if not t or t == "Z" then break end
    if t == "D" then row = body:sub(7, 6 + rd32(body, 3)) end -- int16 ncols, int32 len, value (last row wins)
  end
  send(sock, "X", "")
  sock:close()
  return { ok = true, stage = "authenticated", message = "AuthenticationOk", row = row, mechanism = mechanism }
end

-- The lines both paths print: "result=ok|fail\nstage=...\nmessage=...\nrow=...\nmechanism=..."
function _M.report(r, emit)
  emit("result=" .. (r.ok and "ok" or "fail"))
  emit("stage=" .. r.stage)
  emit("message=" .. (tostring(r.message):gsub("\n", " ")))
  emit("row=" .. (r.row or ""))
  emit("mechanism=" .. (r.mechanism or ""))
  emit("server_error=" .. (r.server_error or ""))
end

return _M
