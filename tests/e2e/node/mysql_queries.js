// mysql2 (npm) against a MySQL/MariaDB port: text queries, prepared statements (execute(),
// COM_STMT_PREPARE/EXECUTE with binary rows), an error, NULLs, dates. Prints one JSON object.
// Usage: node mysql_queries.js PORT USER PASSWORD DATABASE
const mysql = require("mysql2/promise");

(async () => {
	const [port, user, password, database] = process.argv.slice(2);
	const c = await mysql.createConnection({host: "127.0.0.1", port: +port, user, password,
		database, dateStrings: true});
	const out = {};
	[out.labs] = await c.query("select id, patient_id, result from labs order by id limit 10");
	[out.visits] = await c.query("select id, visits from patients order by id limit 100");
	[out.prepared] = await c.execute("select id, result from labs where id between ? and ? " +
		"order by id limit 10", [3, 6]);
	[out.prepared_again] = await c.execute("select id, result from labs where id between ? and ? " +
		"order by id limit 10", [7, 8]);
	[out.nulls] = await c.query("select null as n, 42 as answer, 'text' as t, cast('2024-02-29' as date) as d");
	try {
		await c.query("select * from no_such_table limit 1");
	} catch (e) {
		out.error = [e.errno, e.sqlState];
	}
	await c.end();
	console.log(JSON.stringify(out));
})().catch((e) => {
	console.error(e);
	process.exit(1);
});
