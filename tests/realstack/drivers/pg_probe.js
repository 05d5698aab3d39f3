// Connects with node-postgres: argv[2] = URL (connectionString), argv[3] = JSON of ssl options
// whose values name files (ca, cert, key) plus servername. Prints OK ... or FAIL message.
const fs = require("fs");
const { Client } = require("pg");
const opts = JSON.parse(process.argv[3]);
const ssl = { servername: opts.servername };
for (const k of ["ca", "cert", "key"]) if (opts[k]) ssl[k] = fs.readFileSync(opts[k], "utf8");
const client = new Client({ connectionString: process.argv[2], ssl, connectionTimeoutMillis: 10000 });
client.connect()
  .then(() => client.query("SELECT ssl, coalesce(client_dn, '') AS dn, current_user AS u FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
  .then((r) => { const row = r.rows[0]; console.log(`OK ${row.ssl} ${row.dn} ${row.u}`); return client.end(); })
  .catch((e) => { console.log(`FAIL ${e.message}`); process.exit(1); });
