#!/bin/bash
# `make demo`: hoop's main job on an embedded default. A throwaway PostgreSQL and a throwaway
# MariaDB with synthetic patient data, an "agent" (psql, then the mariadb client) in a cgroup of
# its own, hoopd in the path, and what an operator sees. Everything it starts is removed at the end, also on Ctrl-C or failure.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make demo needs root (BPF programs, cgroups)" >&2; exit 1; }

B=${HOOP_BUILD:-build}
PGBIN=/usr/lib/postgresql/15/bin
WORK=$(mktemp -d /tmp/hoop-demo.XXXXXX)
CGMNT=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
CG="$CGMNT/hoop-demo-$$/agent"
PIN=/sys/fs/bpf/hoop-demo-$$
CTL="$WORK/hoopd.sock"
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PGPORT=$(free_port)
MYPORT=$(free_port)
LPORT=$(free_port)
HOOPD_PID=""
APPROVER=hoopdemo$$

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
agent() { sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" "$@"; }
hoopctl() { "$B/hoopctl" --control "$CTL" "$@"; }

cleanup() {
	set +e
	id "$APPROVER" >/dev/null 2>&1 && userdel "$APPROVER"
	getent group "$APPROVER-grp" >/dev/null && groupdel "$APPROVER-grp"
	[ -n "$HOOPD_PID" ] && hoopctl detach --cgroup "$CG" >/dev/null 2>&1
	[ -n "$HOOPD_PID" ] && kill "$HOOPD_PID" 2>/dev/null && wait "$HOOPD_PID" 2>/dev/null
	for p in $(cat "$CG/cgroup.procs" 2>/dev/null); do kill -9 "$p"; done
	rmdir "$CG" "$(dirname "$CG")" 2>/dev/null
	rm -rf "$PIN"
	[ -f "$WORK/pg/postmaster.pid" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg" -m fast -w stop >/dev/null
	[ -n "${MYPID:-}" ] && kill "$MYPID" 2>/dev/null && wait "$MYPID" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

start_hoopd() {
	"$B/hoopd" --policy "$WORK/policy.yaml" --state-dir "$WORK/state" --control "$CTL" \
		--pin-root "$PIN" --listen-port "$LPORT" "$@" >>"$WORK/hoopd.log" 2>&1 &
	HOOPD_PID=$!
	for _ in $(seq 100); do hoopctl ping >/dev/null 2>&1 && return; sleep 0.05; done
	cat "$WORK/hoopd.log"; exit 1
}

say "1. A throwaway PostgreSQL 15 with synthetic patients (port $PGPORT)"
chown postgres "$WORK"
runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pg" -A trust -U postgres --no-sync >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w \
	-o "-p $PGPORT -k $WORK -c listen_addresses=127.0.0.1" start >/dev/null
psql -h 127.0.0.1 -p "$PGPORT" -U postgres -qX -v ON_ERROR_STOP=1 <<'SQL'
CREATE DATABASE clinical;
\c clinical
CREATE TABLE patients (id serial PRIMARY KEY, first_name text, last_name text, ssn text,
                       dob date, email text, phone text, mrn text, city text);
INSERT INTO patients (first_name, last_name, ssn, dob, email, phone, mrn, city)
SELECT (array['Ada','Ben','Cleo','Dev','Eli','Fay'])[1 + g % 6],
       (array['Okafor','Lindqvist','Moreau','Tanaka','Novak'])[1 + g % 5] || g,
       lpad((101 + g % 500)::text, 3, '0') || '-' || lpad((10 + g % 89)::text, 2, '0') || '-' ||
       lpad((1000 + g * 7)::text, 4, '0'),
       date '1950-01-01' + g * 97, 'patient' || g || '@example.org',
       '(415) 555-' || lpad((g % 10000)::text, 4, '0'), 'MRN-' || lpad((20240000 + g)::text, 8, '0'),
       (array['Oakland','Fresno','Eureka'])[1 + g % 3]
FROM generate_series(1, 1000) g;
CREATE TABLE encounters (id serial PRIMARY KEY, patient_id int REFERENCES patients, note text);
INSERT INTO encounters (patient_id, note)
SELECT g, 'follow-up ' || g || CASE WHEN g % 3 = 0 THEN '; called back on (415) 555-' ||
       lpad((g % 10000)::text, 4, '0') || ', chart ' || 'MRN-' || lpad((20240000 + g)::text, 8, '0')
       ELSE '' END
FROM generate_series(1, 1000) g;
CREATE VIEW patient_contacts AS SELECT id, email AS contact, upper(last_name) AS name FROM patients;
SQL
echo "clinical: $(psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d clinical -tAX -c 'select count(*) from patients') patients"

say "1b. A throwaway MariaDB 10.11 with the same kind of patients (port $MYPORT)"
mariadb-install-db --no-defaults --datadir="$WORK/maria" --user=root \
	--auth-root-authentication-method=normal --skip-test-db >/dev/null
/usr/sbin/mariadbd --no-defaults --datadir="$WORK/maria" --socket="$WORK/maria.sock" --user=root \
	--port="$MYPORT" --bind-address=127.0.0.1 --skip-name-resolve --log-error="$WORK/maria.log" \
	--pid-file="$WORK/maria.pid" --innodb-buffer-pool-size=32M >/dev/null 2>&1 &
MYPID=$!
for _ in $(seq 200); do mariadb --no-defaults -S "$WORK/maria.sock" -e 'select 1' >/dev/null 2>&1 && break; sleep 0.1; done
mariadb --no-defaults -S "$WORK/maria.sock" <<'SQL'
DELETE FROM mysql.global_priv WHERE user = 'root' AND host <> 'localhost';
FLUSH PRIVILEGES;
CREATE DATABASE clinical;
CREATE USER 'agent'@'127.0.0.1' IDENTIFIED BY 'agentpw';
GRANT ALL ON clinical.* TO 'agent'@'127.0.0.1';
USE clinical;
CREATE TABLE patients (id int PRIMARY KEY, first_name varchar(32), last_name varchar(32),
                       ssn char(11), dob date, email varchar(64), city varchar(32));
INSERT INTO patients
SELECT seq, ELT(1 + seq % 6, 'Ada', 'Ben', 'Cleo', 'Dev', 'Eli', 'Fay'),
       CONCAT(ELT(1 + seq % 5, 'Okafor', 'Lindqvist', 'Moreau', 'Tanaka', 'Novak'), seq),
       CONCAT(LPAD(101 + seq % 500, 3, '0'), '-', LPAD(10 + seq % 89, 2, '0'), '-', LPAD(1000 + seq * 7, 4, '0')),
       DATE '1950-01-01' + INTERVAL seq * 97 DAY, CONCAT('patient', seq, '@example.org'),
       ELT(1 + seq % 3, 'Oakland', 'Fresno', 'Eureka')
FROM seq_1_to_500;
SQL
echo "clinical (MariaDB): $(mariadb --no-defaults -S "$WORK/maria.sock" -N -e 'select count(*) from clinical.patients') patients"

say "2. hoopd with a policy that targets the database ports"
# A throwaway approver: a local user in the group the policy names.
groupadd "$APPROVER-grp" && useradd -M -s /usr/sbin/nologin -G "$APPROVER-grp" "$APPROVER"
# The demo's database has no TLS: its policy says so (the shipped one verifies the server).
sed -e "s/ports: \[5432\]/ports: [$PGPORT]/" -e "s/upstream_tls: verify-full/upstream_tls: disable/" \
	-e "s/group:hoop-approvers/group:$APPROVER-grp/" policies/hipaa-agents.yaml >"$WORK/policy.yaml"
# ...and a second target: the MariaDB, judged and masked by the same rules
/usr/bin/python3 - "$WORK/policy.yaml" "$MYPORT" <<'PY'
import sys
p, port = sys.argv[1], sys.argv[2]
t = open(p).read()
t = t.replace("\n\n# What the grammar", "\n  - name: clinical-mariadb\n    protocol: mysql\n    ports: [%s]\n"
              "    upstream_tls: disable\n\n# What the grammar" % port, 1)
open(p, "w").write(t)
PY
chmod 755 "$WORK"
grep -A10 '^targets:' "$WORK/policy.yaml" | grep -v '^ *#'

start_hoopd
echo "hoopd is running (pid $HOOPD_PID); its own connections are never redirected"

say "3. An agent cgroup, attached with an owner"
mkdir -p "$CG"
run "$B/hoopctl" --control "$CTL" attach --cgroup "$CG" --owner alice@example.org --label agent=demo-bot

say "4. The agent dials the database's real address; the kernel sends it through hoopd"
agent psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d clinical -tAX \
	-c "select 'agent query ran: ' || count(*) || ' patients' from patients, pg_sleep(1.5) limit 1" \
	-c "select city, count(*) from patients group by city order by city limit 10" &
AGENT=$!
sleep 0.7
run "$B/hoopctl" --control "$CTL" status
wait $AGENT
echo "hoopd's log for that connection:"
grep -E 'agent pid=|closed' "$WORK/hoopd.log" | tail -2 | sed 's/^/  /'

echo "what hoopd recorded of that session (its audit trail, see docs/events.md):"
/usr/bin/python3 - "$WORK/state/audit" <<'PY'
import glob, gzip, json, sys
lines = []
for p in sorted(glob.glob(sys.argv[1] + "/seg-*.jsonl*")):
    lines += (gzip.open if p.endswith(".gz") else open)(p, "rt").read().splitlines()
for line in lines:
    e = json.loads(line)
    if e["kind"] == "session_start":
        a = e["agent"]
        print("  %s session_start  pid=%s comm=%s owner=%s user=%s db=%s -> %s" % (
            e["session"], a["pid"], a["comm"], a["owner"], e["user"], e["database"], e["destination"]))
    elif e["kind"] == "statement":
        print("  %s statement #%d [%s] %s" % (e["session"], e["seq"], e["verdict"], e["text"][:70]))
    if e["kind"] in ("result_columns", "complete") and "columns" in e:
        print("  %s   columns %s" % (e["session"], ", ".join(
            "%s(table %d, col %d)" % (c["name"], c["table_oid"], c["attnum"]) for c in e["columns"])))
    if e["kind"] == "complete":
        print("  %s   complete %s, %d rows, %d us%s" % (e["session"], e["tag"], e["rows"], e["duration_us"],
              ", masked %s" % json.dumps(e["masked"]) if e.get("masked") else ""))
    elif e["kind"] == "session_end":
        print("  %s session_end (%s)" % (e["session"], e["reason"]))
PY

say "5. The policy judges every statement on PostgreSQL's own parse tree"
for sql in "DROP /* cleanup */ TABLE \"patients\"" \
	"with gone as (delete from patients returning *) select count(*) from gone" \
	"select pg_catalog.pg_read_file('/etc/passwd')"; do
	printf '$ agent psql -c "%s"\n' "$sql"
	agent psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d clinical -tAX -c "$sql" 2>&1 | sed 's/^/  /' || true
done
echo "the database is untouched: $(psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d clinical -tAX \
	-c 'select count(*) from patients') patients"
echo "an operator can ask the same question offline:"
run "$B/hoopctl" policy test "$WORK/policy.yaml" --sql "drop table patients; select name from patients limit 5"

say "6. PHI is masked in what the agent gets back, whatever the query calls it"
Q1="select id, first_name, ssn, dob, email, phone, mrn from patients order by id limit 3"
echo "what the database holds (a direct connection, not through hoop):"
psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d clinical -X -c "$Q1" | sed 's/^/  /'
echo "what the agent gets for the same query:"
printf '$ agent psql -c "%s"\n' "$Q1"
agent psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d clinical -X -c "$Q1" 2>&1 | sed 's/^/  /'
for sql in "select upper(ssn) as x, row_to_json(p) as everything from patients p order by id limit 1" \
	"select contact, name from patient_contacts order by id limit 2" \
	"select (select string_agg(ssn, ',') from (select ssn from patients order by id limit 3) s) as ssns limit 1" \
	"select id, note from encounters where id in (3, 6) order by id limit 2"; do
	printf '$ agent psql -c "%s"\n' "$sql"
	agent psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d clinical -X -c "$sql" 2>&1 | sed 's/^/  /' || true
done
echo "a predicate that probes a masked column waits for approval (here nobody approves; the agent gives up):"
printf '$ agent psql -c "select id from patients where ssn like %s limit 5"\n' "'101%'"
agent timeout -s INT 2 psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d clinical -X \
	-c "select id from patients where ssn like '101%' limit 5" 2>&1 | sed 's/^/  /' || true

say "7. A risky statement waits for a person: just-in-time approval"
printf '$ agent psql -c "select first_name, ssn from patients order by id"   # a bulk PHI read\n'
agent psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d clinical -tAX \
	-c "select first_name, ssn from patients order by id" >"$WORK/held.out" 2>"$WORK/held.err" &
HELD=$!
for _ in $(seq 50); do
	read -r ID SID < <(runuser -u "$APPROVER" -- "$B/hoopctl" --control "$CTL" approvals --json 2>/dev/null |
		/usr/bin/python3 -c 'import json,sys; a=json.load(sys.stdin)["approvals"]; print(a[0]["id"], a[0]["session"]) if a else print()') || true
	[ -n "${ID:-}" ] && break
	sleep 0.1
done
sed 's/^/  agent: /' "$WORK/held.err"
echo "an approver looks at what is waiting:"
runuser -u "$APPROVER" -- "$B/hoopctl" --control "$CTL" approvals | sed 's/^/  /'
printf '$ hoopctl approve %s --reason "monthly report, ticket 4242"   (as %s)\n' "$ID" "$APPROVER"
runuser -u "$APPROVER" -- "$B/hoopctl" --control "$CTL" approve "$ID" --reason "monthly report, ticket 4242" | sed 's/^/  /'
wait $HELD
echo "  agent: got $(wc -l <"$WORK/held.out") rows, once, masked: $(head -1 "$WORK/held.out")"

say "7b. The same policy for a MySQL agent: the mariadb client against MariaDB"
M() { agent mariadb --no-defaults -h 127.0.0.1 -P "$MYPORT" -u agent -pagentpw clinical --table "$@"; }
for sql in "DROP TABLE /*!50000 patients */" "DELETE FROM \`clinical\`.\`patients\`"; do
	printf '$ agent mariadb -e "%s"\n' "$sql"
	M -e "$sql" 2>&1 | sed 's/^/  /' || true
done
Q2="select id, first_name, last_name, ssn, dob, email, city from patients order by id limit 3"
echo "what MariaDB holds (a direct connection, not through hoop):"
mariadb --no-defaults -S "$WORK/maria.sock" clinical --table -e "$Q2" | sed 's/^/  /'
echo "what the agent gets for the same query, and for values computed from masked columns:"
printf '$ agent mariadb -e "%s"\n' "$Q2"
M -e "$Q2" 2>&1 | sed 's/^/  /'
agent /usr/bin/python3 - "$MYPORT" <<'PY' 2>&1 | sed 's/^/  /'
import sys, MySQLdb
c = MySQLdb.connect(host="127.0.0.1", port=int(sys.argv[1]), user="agent", passwd="agentpw", db="clinical")
cur = c.cursor()
cur.execute("select upper(first_name), concat(ssn, '') as s, city from patients where id = %s limit 1", (2,))
print("computed from masked columns:", cur.fetchall())
PY
MSID=$(/usr/bin/python3 - "$WORK/state/audit" <<'PY'
import glob, gzip, json, sys
sid = ""
for p in sorted(glob.glob(sys.argv[1] + "/seg-*.jsonl*")):
    for line in (gzip.open if p.endswith(".gz") else open)(p, "rt"):
        e = json.loads(line)
        if e["kind"] == "session_start" and e.get("protocol") == "mysql":
            sid = e["session"]
print(sid)
PY
)

say "8. The agent still sees the database as its peer (getpeername)"
agent /usr/bin/python3 -c "
import socket; s = socket.create_connection(('127.0.0.1', $PGPORT)); print('  agent connected to', s.getpeername())"

say "9. Fail closed: with hoopd stopped, the agent cannot go around it"
kill "$HOOPD_PID"; wait "$HOOPD_PID" 2>/dev/null || true; HOOPD_PID=""
APPROVER=hoopdemo$$
agent psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d clinical -tAX -c "select 1" 2>&1 | sed 's/^/  /' || true
start_hoopd
echo "hoopd is back; no re-attach needed:"
agent psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d clinical -tAX -c "select '  agent query ran again'"

say "10. Detach"
run "$B/hoopctl" --control "$CTL" detach --cgroup "$CG"
kill "$HOOPD_PID"; wait "$HOOPD_PID" 2>/dev/null || true; HOOPD_PID=""

say "11. The audit trail: replay a session, then prove nothing was changed"
run "$B/hoopctl" sessions --state-dir "$WORK/state"
echo "the session whose statement was approved, as it happened:"
run "$B/hoopctl" replay "$SID" --state-dir "$WORK/state"
echo "a MySQL session, the same way:"
[ -n "$MSID" ] && run "$B/hoopctl" replay "$MSID" --state-dir "$WORK/state"
run "$B/hoopctl" verify --state-dir "$WORK/state"
echo "flip one byte of the trail and verify again:"
/usr/bin/python3 - "$WORK/state/audit" <<'PY'
import glob, gzip, sys
p = sorted(glob.glob(sys.argv[1] + "/seg-*.jsonl.gz"))[0]
data = bytearray(gzip.open(p).read())
i = data.index(b'"kind":"statement"')
data[i + 9] ^= 0x01
gzip.open(p, "wb").write(bytes(data))
PY
"$B/hoopctl" verify --state-dir "$WORK/state" | sed 's/^/  /' || true
echo
echo "Demo done. See README.md and docs/ for each part."
