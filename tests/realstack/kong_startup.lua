-- Kong's start-up connection: Kong.init -> db:init_connector() -> `SHOW server_version_num;`,
-- run in the nginx master (root) with socket_type "luasocket": LuaSocket + LuaSec.
--
-- pgmoon hands LuaSec { protocol = pg_ssl_version, cafile = <the combined trust file>,
-- verify = pg_ssl_verify and "peer" or "none", certificate = pg_ssl_cert, key = pg_ssl_cert_key,
-- options = all, no_sslv2, no_sslv3, no_tlsv1 } (Kong/pgmoon 2.3.2.0, create_luasec_opts). No
-- `depth`: LuaSec leaves OpenSSL's own limit, so lua_ssl_verify_depth does not apply here.
-- The key and certificate are file paths that LuaSec reads itself, as root.
--
-- usage: lua5.1 kong_startup.lua SETTINGS.lua PORT USER DATABASE [PASSWORD]
-- SETTINGS.lua returns { host, ssl, required, verify, protocol, cafile, cert_file, key_file }.

package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local socket = require "socket"
local ssl = require "ssl"
local kdf, hmac, digest, rand = require "openssl.kdf", require "openssl.hmac", require "openssl.digest",
    require "openssl.rand"
local pgwire = require "pgwire"

local s = dofile(arg[1])
local o = { port = tonumber(arg[2]), user = arg[3], database = arg[4] }
s.password = arg[5]

-- tls-server-end-point (RFC 5929): the certificate's signature hash, SHA-256 for MD5 and SHA-1
local function cbind(conn)
  local cert = conn:getpeercertificate()
  if not cert then return nil, "no server certificate" end
  local name = cert:getsignaturename():lower()
  local md = name:match("sha512") and "sha512" or name:match("sha384") and "sha384" or "sha256"
  return (cert:digest(md):gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
end

local crypto = {
  hmac = function(key, data) return hmac.new(key, "sha256"):final(data) end,
  sha256 = function(data) return digest.new("sha256"):final(data) end,
  pbkdf2 = function(pass, salt, iter)
    return kdf.derive { type = "PBKDF2", md = "sha256", pass = pass, salt = salt, iter = iter, outlen = 32 }
  end,
  random = rand.bytes,
  cbind = cbind,
}

local function tls(sock)
  local params = { mode = "client", protocol = s.protocol, cafile = s.cafile,
                   verify = s.verify and "peer" or "none", certificate = s.cert_file, key = s.key_file,
                   options = { "all", "no_sslv2", "no_sslv3", "no_tlsv1" } }
  local conn, err = ssl.wrap(sock, params)
  if not conn then return nil, err, "setclientcert" end
  local ok, herr = conn:dohandshake()
  if not ok then return nil, herr end
  return conn
end

local sock = socket.tcp()
sock:settimeout(10)
local r
local ok, err = sock:connect(s.host, o.port)
if not ok then
  r = { ok = false, stage = "connect", message = err }
else
  r = pgwire.connect(sock, s, o, tls, crypto)
end
pgwire.report(r, print)
