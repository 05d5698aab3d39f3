-- Kong's runtime connection, in an nginx worker running as the `kong` user, over a cosocket.
--
-- For every new connection, as Kong Enterprise's pgmoon (2.3.2.0, create_luasec_opts):
--   key  = assert(ssl.parse_pem_priv_key(pl_file.read(pg_ssl_cert_key, true)))
--   cert = assert(ssl.parse_pem_cert(pl_file.read(pg_ssl_cert, true)))
-- read by the worker, so a key the kong user cannot read fails here, with Kong's own text
-- ("ngx/ssl.lua:381: attempt to get length of local 'pem' (a nil value)").
-- Then setclientcert -> sslhandshake(<no reuse>, nil, pg_ssl_verify): no SNI, no host name
-- check, lua_ssl_trusted_certificate / lua_ssl_verify_depth / lua_ssl_protocols of the location.
-- The PostgreSQL side (StartupMessage, SCRAM-SHA-256[-PLUS]) is pgwire.lua, shared with the
-- start-up path.
--
-- lua-nginx-module 0.10.23 sometimes reports a failed certificate check as a successful
-- sslhandshake (fixed in 0.10.32); the socket is then already closed, so "no AuthenticationOk"
-- is what counts as a refusal, never the handshake alone.
--
-- Crypto (SHA-256, HMAC, PBKDF2, the server certificate's hash for tls-server-end-point) is
-- libcrypto/libssl through LuaJIT's FFI: nginx is linked against both. Kong gets the peer
-- certificate through its own nginx module; stock Debian nginx has none, so the handshake
-- asks for the SSL session (not reused) and reads the peer certificate from it.

local ffi = require "ffi"
local ngx_ssl = require "ngx.ssl"
local pgwire = require "pgwire"

ffi.cdef [[
typedef struct evp_md_st KONGPG_EVP_MD;
typedef struct x509_st KONGPG_X509;
const KONGPG_EVP_MD *EVP_sha256(void);
const KONGPG_EVP_MD *EVP_get_digestbyname(const char *name);
const char *OBJ_nid2sn(int n);
unsigned char *HMAC(const KONGPG_EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md, unsigned int *md_len);
int PKCS5_PBKDF2_HMAC(const char *pass, int passlen, const unsigned char *salt, int saltlen, int iter,
                      const KONGPG_EVP_MD *digest, int keylen, unsigned char *out);
unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md);
int RAND_bytes(unsigned char *buf, int num);
KONGPG_X509 *SSL_SESSION_get0_peer(void *s);
int X509_get_signature_nid(const KONGPG_X509 *x);
int OBJ_find_sigid_algs(int signid, int *pdig_nid, int *ppkey_nid);
int X509_digest(const KONGPG_X509 *data, const KONGPG_EVP_MD *type, unsigned char *md, unsigned int *len);
]]
local C = ffi.C
local NID_md5, NID_sha1 = 4, 64

local _M = { settings = {} }

local crypto = {
  hmac = function(key, data)
    local out, len = ffi.new("unsigned char[32]"), ffi.new("unsigned int[1]")
    assert(C.HMAC(C.EVP_sha256(), key, #key, data, #data, out, len) ~= nil, "HMAC failed")
    return ffi.string(out, len[0])
  end,
  sha256 = function(data)
    local out = ffi.new("unsigned char[32]")
    C.SHA256(data, #data, out)
    return ffi.string(out, 32)
  end,
  pbkdf2 = function(password, salt, iterations)
    local out = ffi.new("unsigned char[32]")
    assert(C.PKCS5_PBKDF2_HMAC(password, #password, salt, #salt, iterations, C.EVP_sha256(), 32, out) == 1,
           "PBKDF2 failed")
    return ffi.string(out, 32)
  end,
  random = function(n)
    local buf = ffi.new("unsigned char[?]", n)
    assert(C.RAND_bytes(buf, n) == 1, "RAND_bytes failed")
    return ffi.string(buf, n)
  end,
}

-- tls-server-end-point (RFC 5929): the certificate's signature hash, SHA-256 for MD5 and SHA-1
local function cbind_from(session)
  if type(session) ~= "cdata" then return nil, "no TLS session to read the server certificate from" end
  local cert = C.SSL_SESSION_get0_peer(session)
  if cert == nil then return nil, "no server certificate in the session" end
  local dig, pk = ffi.new("int[1]"), ffi.new("int[1]")
  local md = C.EVP_sha256()
  if C.OBJ_find_sigid_algs(C.X509_get_signature_nid(cert), dig, pk) == 1
      and dig[0] ~= NID_md5 and dig[0] ~= NID_sha1 then
    md = C.EVP_get_digestbyname(C.OBJ_nid2sn(dig[0]))
  end
  local out, len = ffi.new("unsigned char[64]"), ffi.new("unsigned int[1]")
  assert(C.X509_digest(cert, md, out, len) == 1, "X509_digest failed")
  return ffi.string(out, len[0])
end

-- pl_file.read: the contents, or nil when the file cannot be read (by this worker's user)
local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("*a")
  f:close()
  return data
end

function _M.init(settings)
  _M.settings = settings
end

function _M.connect(s, o)
  local sock = ngx.socket.tcp()
  sock:settimeout(5000)
  local ok, err = sock:connect(o.host, o.port)
  if not ok then return { ok = false, stage = "connect", message = err } end
  local session
  local function tls(cs)
    if s.cert_file then
      local pok, perr = pcall(function()
        local key = assert(ngx_ssl.parse_pem_priv_key(read_file(s.key_file)))
        local cert = assert(ngx_ssl.parse_pem_cert(read_file(s.cert_file)))
        assert(cs:setclientcert(cert, key))
      end)
      if not pok then return nil, perr, "setclientcert" end
    end
    -- pgmoon passes `false` (no session); this asks for the session to read the peer certificate.
    -- In the 0.10.23 bug above the module reports success where `false` returns true, and with a
    -- session requested resty.core asserts instead: both mean "handshake ok" on a closed socket,
    -- and reading on says `closed`, as in Kong.
    local hok, sess, herr = pcall(cs.sslhandshake, cs, nil, nil, s.verify)
    if not hok then
      if not tostring(sess):find("assertion failed", 1, true) then error(sess) end
      return cs
    end
    if sess == nil and herr ~= nil then return nil, herr end
    session = sess
    return cs
  end
  crypto.cbind = function() return cbind_from(session) end
  return pgwire.connect(sock, s, o, tls, crypto)
end

-- GET /k/<id>?port=&user=&database=&password=  ->  pgwire.report lines
function _M.handler(id)
  local a = ngx.req.get_uri_args()
  local s = setmetatable({ password = a.password }, { __index = _M.settings[id] })
  local r = _M.connect(s, { host = s.host, port = tonumber(a.port), user = a.user, database = a.database })
  pgwire.report(r, ngx.say)
end

return _M
