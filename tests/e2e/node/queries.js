// node-postgres as an agent: many queued queries on one client (text and parameterised,
// i.e. simple and extended protocol), a transaction, an error, and a pool; prints JSON.
// Usage: node queries.js PORT
const { Client, Pool } = require('pg');

async function main() {
  const port = Number(process.argv[2]);
  const cfg = { host: '127.0.0.1', port, user: 'postgres', database: 'clinical' };
  const out = {};
  const c = new Client(cfg);
  await c.connect();
  // Queued back to back without awaiting each: the driver keeps them in flight.
  const qs = [];
  for (let i = 0; i < 200; i++) qs.push(c.query('select $1::int * 3 as v, $2::text as t', [i, 'p' + i]));
  const rs = await Promise.all(qs);
  out.sum = rs.reduce((a, r) => a + r.rows[0].v, 0);
  out.last = rs[199].rows[0].t;
  await c.query('begin');
  await c.query('create temp table nt (id int, j jsonb)');
  await c.query("insert into nt select g, jsonb_build_object('g', g) from generate_series(1, 1000) g");
  out.json = (await c.query("select sum((j->>'g')::int) as s from nt")).rows[0].s;
  await c.query('commit');
  try { await c.query('select 1/0'); } catch (e) { out.error = e.code; }
  out.after_error = (await c.query('select 42 as x')).rows[0].x;
  out.big = (await c.query('select count(*)::int as n, md5(string_agg(md5(g::text), \'\')) as h from generate_series(1, 50000) g')).rows[0];
  await c.end();
  const pool = new Pool({ ...cfg, max: 8 });
  const ps = [];
  for (let i = 0; i < 64; i++) ps.push(pool.query('select pg_sleep(0.01), $1::int as i', [i]));
  out.pool = (await Promise.all(ps)).reduce((a, r) => a + r.rows[0].i, 0);
  await pool.end();
  console.log(JSON.stringify(out));
}
main().catch((e) => { console.error(e); process.exit(1); });
