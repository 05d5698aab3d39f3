-- What Kong's pgmoon does when it opens a PostgreSQL connection, over an nginx cosocket.
--
-- SSLRequest -> 'S' -> setclientcert (when pg_ssl_cert is set, Kong Enterprise)
-- -> sslhandshake(false, nil, pg_ssl_verify)   (no SNI, no host name check: as Kong)
-- -> StartupMessage -> authentication (none, or SCRAM-SHA-256 with pg_password)
-- -> success ONLY when AuthenticationOk arrives.
--
-- lua-nginx-module 0.10.23 sometimes reports a failed certificate check as a
-- successful sslhandshake (fixed in 0.10.32); the socket is then already closed,
-- so "no AuthenticationOk" is what counts as a refusal, never the handshake alone.
--
-- SCRAM-SHA-256 (RFC 5802 / 7677) uses libcrypto through LuaJIT's FFI: nginx is
-- linked against it, and Debian's lua-resty-core has no SHA-256 or HMAC helper.
-- The client offers no channel binding ("n,,"), as a client without it must.

local ffi = require "ffi"
local bit = require "bit"
local ngx_ssl = require "ngx.ssl"

local band, bor, bxor, lshift, rshift = bit.band, bit.bor, bit.bxor, bit.lshift, bit.rshift
local char, byte, concat = string.char, string.byte, table.concat

ffi.cdef [[
typedef struct evp_md_st KONGPG_EVP_MD;
const KONGPG_EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const KONGPG_EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md, unsigned int *md_len);
int PKCS5_PBKDF2_HMAC(const char *pass, int passlen, const unsigned char *salt, int saltlen, int iter,
                      const KONGPG_EVP_MD *digest, int keylen, unsigned char *out);
unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md);
int RAND_bytes(unsigned char *buf, int num);
]]
local C = ffi.C

local _M = { settings = {} }

-- ---- crypto helpers (32-byte SHA-256 outputs) --------------------------------
local function hmac(key, data)
  local out, len = ffi.new("unsigned char[32]"), ffi.new("unsigned int[1]")
  assert(C.HMAC(C.EVP_sha256(), key, #key, data, #data, out, len) ~= nil, "HMAC failed")
  return ffi.string(out, len[0])
end

local function sha256(data)
  local out = ffi.new("unsigned char[32]")
  C.SHA256(data, #data, out)
  return ffi.string(out, 32)
end

local function pbkdf2(password, salt, iterations)
  local out = ffi.new("unsigned char[32]")
  assert(C.PKCS5_PBKDF2_HMAC(password, #password, salt, #salt, iterations, C.EVP_sha256(), 32, out) == 1,
         "PBKDF2 failed")
  return ffi.string(out, 32)
end

local function random_bytes(n)
  local buf = ffi.new("unsigned char[?]", n)
  assert(C.RAND_bytes(buf, n) == 1, "RAND_bytes failed")
  return ffi.string(buf, n)
end

local function xor(a, b)
  local out = {}
  for i = 1, #a do out[i] = char(bxor(byte(a, i), byte(b, i))) end
  return concat(out)
end

-- ---- protocol framing -------------------------------------------------------------
local function be32(n)
  return char(band(rshift(n, 24), 255), band(rshift(n, 16), 255), band(rshift(n, 8), 255), band(n, 255))
end

local function rd32(s, i)
  local a, b, c, d = byte(s, i, i + 3)
  return bor(lshift(a, 24), lshift(b, 16), lshift(c, 8), d)
end

local function read_msg(sock)
  local t, err = sock:receive(1)
  if not t then return nil, err end
  local l, err2 = sock:receive(4)
  if not l then return nil, err2 end
  local n = rd32(l, 1) - 4
  if n == 0 then return t, "" end
  local body, err3 = sock:receive(n)
  if not body then return nil, err3 end
  return t, body
end

local function error_fields(body)
  local f = {}
  for k, v in body:gmatch("(%Z)(%Z*)%z") do f[k] = v end
  return (f.S or "?") .. " " .. (f.C or "?") .. ": " .. (f.M or "?")
end

local function send_sasl(sock, tag, payload)
  return sock:send(tag .. be32(#payload + 4) .. payload)
end

-- ---- SCRAM-SHA-256 -------------------------------------------------------------------
-- Returns true once the server signature has been verified, or nil and an error.
local function scram(sock, mechanisms, password)
  if not ("\0" .. mechanisms):find("\0SCRAM-SHA-256\0", 1, true) then
    return nil, "server offers no SCRAM-SHA-256 (offered: " .. mechanisms:gsub("%z", " ") .. ")"
  end
  if not password then
    return nil, "server asks for a password (SCRAM-SHA-256) and pg_password is not set"
  end
  local cnonce = ngx.encode_base64(random_bytes(18))
  local first_bare = "n=,r=" .. cnonce
  local first = "n,," .. first_bare
  send_sasl(sock, "p", "SCRAM-SHA-256\0" .. be32(#first) .. first)

  local t, body = read_msg(sock)
  if not t then return nil, "reading SASLContinue: " .. tostring(body) end
  if t == "E" then return nil, "server error: " .. error_fields(body) end
  if t ~= "R" or rd32(body, 1) ~= 11 then return nil, "expected SASLContinue, got " .. t end
  local server_first = body:sub(5)
  local nonce, salt, iters = server_first:match("^r=([^,]+),s=([^,]+),i=(%d+)")
  if not nonce or nonce:sub(1, #cnonce) ~= cnonce then return nil, "bad server-first-message" end

  local salted = pbkdf2(password, ngx.decode_base64(salt), tonumber(iters))
  local client_key = hmac(salted, "Client Key")
  local final_bare = "c=biws,r=" .. nonce -- biws = base64("n,,")
  local auth_message = first_bare .. "," .. server_first .. "," .. final_bare
  local proof = xor(client_key, hmac(sha256(client_key), auth_message))
  send_sasl(sock, "p", final_bare .. ",p=" .. ngx.encode_base64(proof))

  t, body = read_msg(sock)
  if not t then return nil, "reading SASLFinal: " .. tostring(body) end
  if t == "E" then return nil, "server error: " .. error_fields(body) end
  if t ~= "R" or rd32(body, 1) ~= 12 then return nil, "expected SASLFinal, got " .. t end
  local expected = ngx.encode_base64(hmac(hmac(salted, "Server Key"), auth_message))
  if body:sub(5) ~= "v=" .. expected then return nil, "server signature does not match" end
  return true
end

-- ---- settings, read in init_by_lua (the master runs as root; workers as nobody) -----------
function _M.init(settings)
  for id, s in pairs(settings) do
    if s.cert_file then
      local fc, fk = assert(io.open(s.cert_file)), assert(io.open(s.key_file))
      s.cert = assert(ngx_ssl.parse_pem_cert(fc:read("*a")))
      s.key = assert(ngx_ssl.parse_pem_priv_key(fk:read("*a")))
      fc:close(); fk:close()
    end
    _M.settings[id] = s
  end
end

-- One connection attempt as pgmoon makes it. Returns ok, stage, message, row.
function _M.connect(s, o)
  local sock = ngx.socket.tcp()
  sock:settimeout(5000)
  local ok, err = sock:connect(o.host, o.port)
  if not ok then return false, "connect", err end

  if s.ssl then
    sock:send(be32(8) .. be32(80877103)) -- SSLRequest
    local answer, rerr = sock:receive(1)
    if answer == "S" then
      if s.cert then
        ok, err = sock:setclientcert(s.cert, s.key)
        if not ok then return false, "setclientcert", err end
      end
      ok, err = sock:sslhandshake(false, nil, s.verify)
      if not ok then return false, "tls", err end
    elseif s.required then
      return false, "sslrequest", "server does not support SSL: " .. tostring(answer or rerr)
    elseif not answer then
      return false, "sslrequest", tostring(rerr)
    end
  end

  local startup = be32(196608) .. "user\0" .. o.user .. "\0database\0" .. o.database ..
      "\0application_name\0kong-equivalent\0\0"
  ok, err = sock:send(be32(#startup + 4) .. startup)
  if not ok then return false, "startup", "send: " .. err end

  local authenticated = false
  while true do
    local t, body = read_msg(sock)
    if not t then
      return false, authenticated and "query" or "startup", "receive: " .. tostring(body)
    end
    if t == "E" then return false, authenticated and "query" or "auth", "server error: " .. error_fields(body) end
    if t == "R" then
      local code = rd32(body, 1)
      if code == 0 then
        authenticated = true
      elseif code == 10 then
        local sok, serr = scram(sock, body:sub(5), o.password)
        if not sok then return false, "auth", serr end
      else
        return false, "auth", "unsupported authentication request " .. code
      end
    elseif t == "Z" then
      break
    end
  end
  if not authenticated then return false, "auth", "ReadyForQuery without AuthenticationOk" end

  local q = "SELECT concat_ws('|', ssl::text, coalesce(version, ''), coalesce(client_dn, ''), current_user) " ..
      "FROM pg_stat_ssl WHERE pid = pg_backend_pid()\0"
  sock:send("Q" .. be32(#q + 4) .. q)
  local row
  while true do
    local t, body = read_msg(sock)
    if not t or t == "Z" then break end
    if t == "D" then row = body:sub(7, 6 + rd32(body, 3)) end -- int16 ncols, int32 len, value
  end
  sock:send("X" .. be32(4))
  sock:close()
  return true, "authenticated", "AuthenticationOk", row
end

-- GET /k/<id>?port=&user=&database=&password=  ->  "result=ok|fail\nstage=...\nmessage=...\nrow=..."
function _M.handler(id)
  local a = ngx.req.get_uri_args()
  local s = _M.settings[id]
  local ok, stage, message, row = _M.connect(s, {
    host = s.host, port = tonumber(a.port), user = a.user, database = a.database, password = a.password,
  })
  ngx.say("result=", ok and "ok" or "fail")
  ngx.say("stage=", stage)
  ngx.say("message=", (tostring(message):gsub("\n", " ")))
  ngx.say("row=", row or "")
end

return _M
