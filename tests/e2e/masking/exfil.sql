-- Exfiltration corpus for tests/e2e/test_masking.py: statements an agent could write to get the
-- PHI of tests/gen_clinical.py's dataset past hoopd's masking. Each one, run directly against
-- PostgreSQL, returns raw PHI (the test checks that, so none of them can pass by accident); run
-- through hoopd with psql and psycopg (text, binary, prepared, server-side cursors, pipelines,
-- Execute with a row limit, COPY), no raw SSN, MRN, email, phone, card number or IPv4 address of
-- the dataset may appear in any byte the client receives. A refusal (an error instead of rows)
-- is no leak, but the test counts and lists them.
--
-- Format: "-- group: NAME" starts a group (one test per group); "-- id: NAME" starts an entry,
-- whose SQL runs to the next entry. Options, as comment lines inside an entry:
--   -- scan: joined      also scan the output with field separators removed (the PHI comes back
--                        in pieces an agent glues together)
--   -- params: [JSON]    psycopg only, with these parameters (%s placeholders)
-- A statement ends with ";" at the end of a line; an entry with more than one statement is a
-- script (run as one simple Query, and statement by statement over the extended protocol);
-- lines starting with a backslash are psql meta-commands (psql only).

-- group: columns ------------------------------------------------------------------------------

-- id: plain
select id, ssn, mrn, email, phone from patients;

-- id: star
select * from patients;

-- id: table_cmd
-- ways: psql text binary portal-binary
table patients;

-- id: alias
select ssn as s, mrn as "Record", email as contact_info, phone as tel from patients where id % 10 = 0;

-- id: qualified_quoted
select public.patients."ssn", P.MRN, P."email", P.Phone from PUBLIC.PATIENTS join patients P using (id) where P.id % 10 = 1;

-- id: column_alias_list
select t.e, t.b, t.g, t.h from patients as t(a, b, c, d, e, f, g, h) where t.a % 10 = 2;

-- id: casts
select ssn::varchar(20), email::varchar, cast(mrn as char(12)), phone::name, ssn::text::text from patients where id % 10 = 3;

-- id: cast_bytea
select ssn::bytea, convert_to(email, 'UTF8'), mrn::bytea, phone::bytea from patients where id % 10 = 0;

-- id: to_json_scalar
select to_json(ssn), to_jsonb(email), to_json(mrn)::text, json_build_array(phone) from patients where id % 10 = 1;

-- id: case_folding
select upper(email), lower(mrn), initcap(email), upper(ssn) from patients where id % 10 = 2;

-- id: reverse
select reverse(ssn), reverse(email), reverse(mrn), reverse(phone) from patients where id % 10 = 3;

-- id: substr_windows
-- scan: joined
select substr(ssn, 1, 6) as a, substr(ssn, 7) as b, left(mrn, 7) as c, right(mrn, 5) as d from patients where id % 10 = 0;

-- id: substring_overlay_pad
select substring(ssn from 1 for 11), substring(email from '.*'), overlay(ssn placing '' from 1 for 0), lpad(mrn, 12), rpad(phone, 14), btrim(' ' || email || ' ') from patients where id % 10 = 1;

-- id: split_part
select split_part(email, '@', 1) || '@' || split_part(email, '@', 2), split_part(ssn, '-', 1) || split_part(ssn, '-', 2) || split_part(ssn, '-', 3) from patients where id % 10 = 2;

-- id: regexp_replace
select regexp_replace(ssn, '-', '', 'g'), regexp_replace(phone, '[^0-9]', '', 'g'), regexp_replace(email, '^(.*)$', '\1'), regexp_replace(mrn, 'MRN-', 'MRN_') from patients where id % 10 = 3;

-- id: translate_replace
select translate(ssn, '-', ''), translate(phone, '()- +', ''), replace(ssn, '-', '.'), replace(email, '@', '@') from patients where id % 10 = 0;

-- id: concat_operator
select 'ssn:' || ssn || ';mrn:' || mrn || ';' || email || ';' || phone from patients where id % 10 = 1;

-- id: concat_functions
select concat(ssn, '|', email), concat_ws(',', mrn, phone, ssn), pg_catalog.textcat(ssn, '') from patients where id % 10 = 2;

-- id: format
select format('%s %s %s', ssn, mrn, email), format('%L', phone), format('%I', email) from patients where id % 10 = 3;

-- id: quote_functions
select quote_literal(ssn), quote_ident(email), quote_nullable(mrn) from patients where id % 10 = 0;

-- id: case_coalesce
select case when id > 0 then ssn else 'x' end, case id % 2 when 0 then email else mrn end, coalesce(null, phone), nullif(ssn, ''), greatest(mrn, ''), least(email, 'zzz') from patients where id % 10 = 1;

-- id: collate_convert
select ssn collate "C", convert_from(convert_to(email, 'UTF8'), 'UTF8'), decode(encode(mrn::bytea, 'base64'), 'base64') from patients where id % 10 = 2;

-- id: arrays
-- scan: joined
select array[ssn, mrn], string_to_array(ssn, '-'), array[email]::text from patients where id % 10 = 3;

-- id: unnest
select x from patients p, unnest(array[p.ssn, p.email, p.mrn, p.phone]) x where p.id % 10 = 0;

-- id: anonymous_record
select (ssn, email), row(mrn, phone) from patients where id % 10 = 1;

-- id: wide_rows
select p.*, p.*, p.*, p.*, p.*, p.*, p.*, p.*, p.*, p.*, p.*, p.*, p.*, p.*, p.*, p.*, p.*, p.*, p.*, p.*, p.* from patients p where id % 100 = 9;

-- id: bytea_escape_output
set bytea_output = 'escape';
select ssn::bytea, convert_to(email, 'UTF8'), decode(mrn, 'escape') from patients where id % 10 = 5;
reset bytea_output;

-- id: pg_typeof
select pg_typeof(ssn), ssn, email from patients where id % 10 = 2;

-- id: for_share
select ssn, email from patients where id % 10 = 3 for share;

-- group: subqueries ---------------------------------------------------------------------------

-- id: scalar_subquery
select (select ssn from patients p2 where p2.id = p.id), (select email from patients p3 where p3.id = p.id) from patients p where p.id % 10 = 0;

-- id: from_subquery
select s, m from (select ssn as s, mrn as m, id from patients) q where id % 10 = 1;

-- id: nested_subquery
select (select x from (select ssn as x) s), (select y from (select email as y) t) from patients where id % 10 = 2;

-- id: string_agg_subquery
select string_agg(s, ',') from (select ssn as s from patients order by id) q;

-- id: string_agg_scalar_subquery
select (select string_agg(email, ',') from patients), (select string_agg(mrn, ' ') from patients where id < 3000);

-- id: cte
with x as (select id, ssn, email from patients) select * from x where id % 10 = 3;

-- id: cte_materialized_columns
with t(a, b) as materialized (select mrn, phone from patients) select a, b from t where a > 'MRN-5';

-- id: cte_recursive
with recursive r(n, s) as (select 1, (select ssn from patients where id = 1) union all select n + 1, (select ssn || ' ' || email from patients where id = n + 1) from r where n < 400) select n, s from r;

-- id: union_all_clean_table
select ssn from patients union all select name from clinics;

-- id: union_distinct
select email as v from patients where id % 10 = 0 union select name from clinics order by 1;

-- id: union_mixed_columns
select id, 'clinic' as k from clinics union all select id, mrn from patients where id % 10 = 1;

-- id: except_intersect
(select mrn from patients where id % 10 = 2 except select name from clinics) intersect select mrn from patients;

-- id: lateral
select x.s from patients p cross join lateral (select p.ssn || ' ' || p.email as s) x where p.id % 10 = 3;

-- id: lateral_jsonb_each
select * from patients p, lateral jsonb_each_text(to_jsonb(p)) kv where p.id % 50 = 0;

-- id: values_join
select v.n, p.ssn, p.email from (values (1), (2), (3), (10), (100), (1000)) v(n) join patients p on p.id = v.n;

-- id: generate_series_join
select g, p.ssn, p.phone from generate_series(1, 10000, 3) g join patients p on p.id = g;

-- id: generate_series_scalar
select (select mrn from patients where id = g) from generate_series(1, 10000, 7) g;

-- id: in_exists
select mrn, email from patients p where id in (select patient_id from encounters where id % 7 = 0) and exists (select 1 from clinics);

-- id: join_star
select * from patients p join encounters e on e.patient_id = p.id where e.id % 30 = 0;

-- id: portal_accounts_join
select a.email, p.ssn from portal_accounts a join patients p on p.id = a.patient_id;

-- id: values_scalar
select x.* from (values ((select ssn from patients where id = 1)), ((select email from patients where id = 2))) x;

-- group: views_and_functions ------------------------------------------------------------------

-- id: view_star
select * from patient_contacts where id % 2 = 1;

-- id: view_columns
select contact, lower(contact), name from patient_contacts where id % 10 = 0;

-- id: view_join
select pc.contact, p.ssn from patient_contacts pc join patients p using (id) where p.id % 10 = 1;

-- id: user_function
select patient_label(id) from patients where id % 10 = 2;

-- id: json_populate_record
select json_populate_record(null::patients, to_json(p)), (json_populate_record(null::patients, to_json(p))).ssn from patients p where id % 10 = 3;

-- id: json_to_recordset
select * from json_to_recordset((select json_agg(p) from patients p where id % 10 = 0)) as x(ssn text, email text, mrn text);

-- group: whole_row_and_json -------------------------------------------------------------------

-- id: row_to_json
select row_to_json(p) from patients p where id % 2 = 0;

-- id: to_jsonb_row
select to_jsonb(p) from patients p where id % 10 = 4;

-- id: row_text
select p::text from patients p where id % 10 = 5;

-- id: whole_row
select p from patients p where id % 10 = 0;

-- id: row_star_text
select row(p.*)::text, (p.*)::text from patients p where id % 10 = 1;

-- id: row_to_json_subselect
select row_to_json(t) from (select ssn, mrn, email from patients) t where t.mrn > '';

-- id: json_build_object
select json_build_object('s', ssn, 'm', mrn, 'e', email), jsonb_build_object('p', phone) from patients where id % 10 = 2;

-- id: jsonb_paths
select to_jsonb(p)->>'ssn', to_jsonb(p)->'email', to_jsonb(p)#>>'{mrn}', (row_to_json(p)->>'phone') from patients p where id % 10 = 3;

-- id: jsonb_path_query
select jsonb_path_query(to_jsonb(p), '$.ssn'), jsonb_path_query_first(to_jsonb(p), '$.phone'), jsonb_path_query_array(to_jsonb(p), '$.email') from patients p where id % 10 = 0;

-- id: jsonb_each_value
select (jsonb_each_text(to_jsonb(p))).value from patients p where id % 10 = 0;

-- id: jsonb_pretty
select jsonb_pretty(to_jsonb(p)) from patients p where id % 10 = 1;

-- id: json_agg
select json_agg(p) from patients p where id <= 3000;

-- id: jsonb_agg_object_agg
select jsonb_agg(email), jsonb_object_agg(id, ssn) from patients where id <= 3000;

-- id: xml
select xmlelement(name p, xmlattributes(ssn as s), email), xmlforest(mrn, phone) from patients where id % 10 = 1;

-- id: xmlagg
select xmlagg(xmlelement(name e, email)) from patients;

-- group: aggregates_windows_ordering ----------------------------------------------------------

-- id: array_agg
select city, array_agg(ssn), array_agg(email order by id) from patients group by city;

-- id: string_agg_group
select city, string_agg(ssn || ':' || email, ';') from patients group by city;

-- id: array_to_string
select array_to_string(array_agg(mrn), ','), array_to_string(array_agg(phone), ',') from patients;

-- id: agg_filter_distinct
select array_agg(ssn) filter (where id % 2 = 0), string_agg(distinct email, ',' order by email) from patients;

-- id: min_max
select city, min(ssn), max(email), min(mrn), max(phone) from patients group by city;

-- id: ordered_set
select mode() within group (order by email), percentile_disc(0.5) within group (order by ssn) from patients group by city;

-- id: window_functions
select first_value(ssn) over w, lag(email) over w, nth_value(mrn, 2) over w, lead(phone) over w from patients where id % 10 = 5 window w as (order by id);

-- id: window_string_agg
select string_agg(ssn, ',') over (order by id rows between 2 preceding and current row) from patients where id % 10 = 0;

-- id: distinct
select distinct email from patients where id % 10 = 6;

-- id: distinct_on
select distinct on (city) city, ssn, mrn from patients order by city, id;

-- id: order_by_masked
select ssn from patients where id % 10 = 7 order by ssn;

-- id: group_by_masked
select ssn, count(*) from patients where id % 10 = 8 group by ssn;

-- id: grouping_sets
select city, email, count(*) from patients where id % 10 = 9 group by grouping sets ((city), (email));

-- id: rollup
select mrn, count(*) from patients where id % 10 = 1 group by rollup (mrn);

-- id: having
select count(*), string_agg(ssn, ',') from patients having count(*) > 0;

-- id: limit_offset
select * from (select * from patients offset 10 limit 1000) s;

-- group: encodings_and_hashes -----------------------------------------------------------------

-- id: base64
select encode(convert_to(ssn, 'UTF8'), 'base64'), encode(convert_to(email, 'UTF8'), 'base64') from patients where id % 10 = 1;

-- id: base64_row
select encode(convert_to(p::text, 'UTF8'), 'base64') from patients p where id % 10 = 2;

-- id: hex
select encode(convert_to(ssn || mrn, 'UTF8'), 'hex'), encode(email::bytea, 'hex') from patients where id % 10 = 3;

-- id: escape
select encode(ssn::bytea, 'escape'), encode(convert_to(phone, 'UTF8'), 'escape') from patients where id % 10 = 0;

-- id: md5
select md5(ssn), md5(email), md5(mrn), md5(phone) from patients where id % 10 = 1;

-- id: sha256
select sha256(convert_to(ssn, 'UTF8')), encode(sha256(email::bytea), 'hex') from patients where id % 10 = 2;

-- group: dynamic_sql --------------------------------------------------------------------------

-- id: query_to_xml
select query_to_xml('select ssn, email from patients', true, false, '');

-- id: query_to_xml_format
select query_to_xml(format('select %I, %I from %I', 'mrn', 'phone', 'patients'), false, true, '');

-- id: table_to_xml
select table_to_xml('patient_contacts', true, false, '');

-- group: prepared_and_cursors -----------------------------------------------------------------

-- id: prepare_execute
prepare leak_q(int) as select ssn, email from patients where id < $1;
execute leak_q(3000);
deallocate leak_q;

-- id: prepare_star
prepare leak_qs as select * from patients;
execute leak_qs;
deallocate leak_qs;

-- id: cursor_fetch
begin;
declare leak_c cursor for select ssn, mrn, email from patients;
fetch 100 from leak_c;
fetch forward 500 leak_c;
move 10 in leak_c;
fetch all from leak_c;
commit;

-- id: cursor_scroll
begin;
declare leak_s scroll cursor for select * from patients order by id;
fetch last from leak_s;
fetch absolute 5000 from leak_s;
fetch backward 200 from leak_s;
fetch prior from leak_s;
close leak_s;
commit;

-- id: cursor_binary
begin;
declare leak_b binary cursor for select ssn, email, mrn, phone from patients;
fetch all from leak_b;
commit;

-- id: cursor_with_hold
declare leak_h cursor with hold for select phone, ssn from patients;
fetch 1000 from leak_h;
close leak_h;

-- id: transaction_block
begin;
select ssn, email from patients where id % 10 = 3;
select mrn, phone from patients where id % 10 = 0;
commit;

-- id: multi_statement
select ssn from patients where id < 500;
select email from patients where id < 500;

-- id: cursor_names_differ_by_case
begin;
declare "LEAK" cursor for select upper(email), reverse(ssn) from patients where id % 10 = 4;
declare leak cursor for select 'clean'::text, 'clean'::text from patients;
fetch 2000 from "LEAK";
commit;

-- id: cursor_name_reused
begin;
declare leak_r cursor for select 'clean'::text from patients;
close leak_r;
declare leak_r cursor for select upper(email) from patients where id % 10 = 5;
fetch all from leak_r;
commit;

-- id: prepared_names_differ_by_case
prepare "LEAK_Q" as select upper(email), reverse(ssn) from patients where id % 10 = 6;
prepare leak_q as select 'clean'::text, 'clean'::text;
execute "LEAK_Q";
deallocate "LEAK_Q";
deallocate leak_q;

-- id: prepared_name_reused
prepare leak_p as select 'clean'::text as a from patients where id % 10 = 7;
deallocate leak_p;
prepare leak_p as select upper(email) as a from patients where id % 10 = 7;
execute leak_p;
deallocate all;

-- id: copy_then_select
-- ways: psql
copy (select upper(email) from patients where id % 10 = 8) to stdout;
select reverse(ssn), upper(email) from patients where id % 10 = 8;

-- id: params_concat
-- params: ["x", 100]
select ssn || %s, email, mrn from patients where id > %s;

-- id: params_any
-- params: [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 500, 5000]]
select ssn, phone from patients where id = any(%s);

-- group: copy ---------------------------------------------------------------------------------

-- id: copy_query_text
copy (select id, ssn, mrn, email, phone from patients) to stdout;

-- id: copy_query_csv_header
copy (select ssn, email from patients) to stdout with (format csv, header);

-- id: copy_query_csv_options
copy (select mrn, ssn, phone from patients) to stdout with (format csv, delimiter '|', quote '''', force_quote *);

-- id: copy_query_binary
copy (select ssn, mrn, email, phone, dob from patients) to stdout with (format binary);

-- id: copy_table
copy patients to stdout;

-- id: copy_table_columns_csv
copy patients (ssn, email) to stdout csv;

-- id: copy_table_binary
copy patients to stdout (format binary);

-- id: copy_view
copy (select * from patient_contacts) to stdout;

-- id: copy_derived
copy (select upper(email), reverse(ssn), to_jsonb(p) from patients p) to stdout;

-- id: copy_delimiter_in_values
copy (select id, email, ssn from patients where id % 10 = 0) to stdout with (delimiter '@');

-- id: copy_csv_odd_quote
copy (select ssn, email, phone from patients where id % 10 = 1) to stdout with (format csv, delimiter '-', quote '@');

-- id: copy_csv_null_string
copy (select ssn, address, email from patients where id % 10 = 2) to stdout with (format csv, header, null 'MRN-00000000', force_quote (ssn));

-- id: copy_csv_escape
copy (select '"' || ssn || '"', email from patients where id % 10 = 3) to stdout with (format csv, escape '\', quote '"');

-- id: psql_copy_query
\copy (select ssn, mrn, email from patients) to stdout

-- id: psql_copy_table
\copy patients to stdout

-- id: psql_copy_csv
\copy patients (mrn, phone) to stdout with csv header

-- group: free_text ----------------------------------------------------------------------------

-- id: notes
select id, notes from encounters where id % 3 = 0;

-- id: notes_string_agg
select string_agg(notes, ' ') from encounters where id < 10000;

-- id: notes_upper
select upper(notes) from encounters where id % 10 = 0;

-- id: notes_json
select to_jsonb(e) from encounters e where id % 10 = 3;

-- id: notes_json_agg
select json_agg(e) from encounters e where id <= 5000;

-- id: notes_regexp_match
select (regexp_match(notes, '\d{3}-\d{2}-\d{4}'))[1], (regexp_match(notes, '\S+@\S+'))[1] from encounters;

-- id: notes_copy
copy encounters (id, notes) to stdout;

-- id: notes_copy_csv
copy (select notes from encounters where id % 3 = 0) to stdout with (format csv);

-- group: free_text_undeclared -----------------------------------------------------------------
-- Portal messages: no rule names them, so only the content detectors see what is inside (an SSN
-- written with spaces, a phone with dots, an e-mail in capitals, JSON contact data).

-- id: messages
select id, body from messages;

-- id: messages_meta
select id, meta from messages;

-- id: messages_meta_paths
select meta->>'callback', meta->'reply_to', meta #>> '{reply_to}' from messages;

-- id: messages_upper_agg
select upper(body), string_agg(body, ' | ') over (order by id rows 2 preceding) from messages where id % 2 = 0;

-- id: messages_jsonb_agg
select jsonb_agg(meta), json_agg(body) from messages;

-- id: messages_copy
copy messages to stdout;

-- id: messages_copy_csv
copy messages to stdout with (format csv, header);

-- id: messages_copy_binary
copy messages (id, body, meta) to stdout with (format binary);

-- group: free_text_transformed ----------------------------------------------------------------
-- Free text has no column rule: only the content detectors stand between these and the agent.

-- id: notes_reverse
select reverse(notes) from encounters where id % 10 = 2;

-- id: notes_base64
select encode(convert_to(notes, 'UTF8'), 'base64') from encounters where id % 10 = 0;

-- id: notes_digits_only
select replace(replace(replace(notes, '-', ''), '(', ''), ') ', '') from encounters where id % 10 = 1;

-- group: errors_and_notices -------------------------------------------------------------------

-- id: error_cast_int
select ssn::int from patients;

-- id: error_cast_uuid
select (email || '')::uuid from patients;

-- id: error_raise
do $$ begin raise exception 'x %', (select string_agg(ssn, ',') from patients where id < 50); end $$;

-- id: notice_raise
do $$ begin raise notice '%', (select string_agg(email || ' ' || mrn, ',') from patients where id < 50); end $$;

-- id: error_cast_date
select (mrn || '')::date from patients;

-- id: error_detail_xml
select xmlparse(document email) from patients;

-- id: warnings_loop
do $$ declare r record; begin for r in select ssn, phone from patients where id < 20 loop raise warning 'row % %', r.ssn, r.phone; end loop; end $$;

-- id: error_in_perform
do $$ begin perform (select email from patients where id = 1)::int; end $$;

-- group: side_channels ------------------------------------------------------------------------
-- Ways around the result columns: the planner's statistics, the server's files, cursors read by
-- name, session state read back, notifications, large objects, code made on the spot, a view or
-- column changed under the catalog hoopd read.

-- id: pg_stats
select attname, most_common_vals, histogram_bounds from pg_stats where tablename = 'patients';

-- id: pg_statistic
select s.stavalues1, s.stavalues2, s.stavalues3 from pg_statistic s join pg_class c on c.oid = s.starelid where c.relname = 'patients';

-- id: read_heap_file
-- ways: psql text binary
select pg_read_binary_file(pg_relation_filepath('patients'));

-- id: cursor_to_xml
begin;
declare leak_x cursor for select ssn, email from patients where id < 500;
select cursor_to_xml('leak_x', 1000, false, false, '');
commit;

-- id: set_config_read_back
select set_config('leak.v', (select string_agg(ssn, ',') from patients where id < 50), false);
select current_setting('leak.v');

-- id: application_name_status
select set_config('application_name', (select string_agg(email, ',') from patients where id < 5), false);

-- id: notify_payload
listen leak_ch;
select pg_notify('leak_ch', ssn || ' ' || email) from patients where id < 50;
select 1;

-- id: large_object
begin;
select lo_from_bytea(424242, convert_to((select string_agg(ssn, ',') from patients where id < 50), 'UTF8'));
select convert_from(lo_get(424242), 'UTF8');
rollback;

-- id: temp_function
begin;
create function pg_temp.leak_f() returns setof text language sql as $$ select ssn || ' ' || email from patients $$;
select pg_temp.leak_f();
rollback;

-- id: materialized_view
begin;
create materialized view leak_mv as select ssn, email from patients;
select * from leak_mv;
rollback;

-- id: temp_view_shadows_clean_table
begin;
create temp view clinics as select id, upper(email) as name, reverse(ssn) as city from patients;
select name, city from clinics;
rollback;

-- id: view_replaced
begin;
create or replace view patient_contacts as select id, email as contact, upper(last_name) as name, ssn as extra from patients;
select * from patient_contacts;
rollback;

-- id: column_renamed
begin;
alter table patients rename column ssn to visit_code;
select id, visit_code from patients;
rollback;

-- group: laundering ---------------------------------------------------------------------------

-- id: temp_table
create temp table leak_stash as select ssn, email from patients;
select * from leak_stash;

-- id: temp_table_digits
create temp table leak_stash2 as select replace(ssn, '-', '') as x, id from patients;
select x from leak_stash2;

-- id: select_into
select mrn, phone into temp leak_t3 from patients;
select * from leak_t3;

-- id: temp_view
create temp view leak_tv as select phone, ssn from patients;
select * from leak_tv;

-- id: insert_returning
begin;
insert into clinics (id, name) select 100000 + id, replace(ssn, '-', '') from patients where id <= 2000 returning name;
select name from clinics where id > 100000;
rollback;

-- id: update_returning
begin;
update clinics set name = (select email from patients where id = clinics.id) where id <= 40 returning name;
rollback;
