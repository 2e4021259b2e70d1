-- Legitimate queries for tests/e2e/test_masking.py: no PHI in their results (non-PHI columns,
-- counts, aggregates, joins on ids or on masked keys whose values are not returned). Through
-- hoopd each must return exactly what a direct connection returns, with psql and with psycopg
-- (text and binary). Same format as exfil.sql; every result is ordered.

-- group: legit

-- id: count_patients
select count(*) from patients;

-- id: count_encounters
select count(*), count(distinct patient_id) from encounters;

-- id: by_city
select city, count(*) from patients group by city order by city;

-- id: by_state
select state, count(*) from patients group by state order by 2 desc, 1;

-- id: insurance_ids
select id, insurance_id from patients order by id;

-- id: city_state_zip
select id, city, state, zip from patients order by id;

-- id: charges
select avg(charge), sum(charge), min(charge), max(charge), stddev(charge)::numeric(12, 4) from encounters;

-- id: median_charge
select percentile_cont(0.5) within group (order by charge) from encounters;

-- id: clinics
select * from clinics order by id;

-- id: clinic_load
-- (count(e.*) would be masked: a whole row of encounters carries its free-text notes, and
-- anything computed from those is redacted; docs/masking.md lists it among the known limits)
select c.name, count(e.id), round(avg(e.charge), 2) from clinics c join encounters e on e.clinic_id = c.id group by c.name order by c.name;

-- id: encounters_per_patient
select p.id, count(e.id) from patients p join encounters e on e.patient_id = p.id group by p.id order by p.id;

-- id: diagnoses
select diagnosis_code, count(*) from encounters group by 1 order by 1;

-- id: by_month
select date_trunc('month', visited_at) as m, count(*) from encounters group by 1 order by 1;

-- id: encounter_rows
select e.id, e.patient_id, e.clinic_id, e.diagnosis_code, e.visited_at, e.charge from encounters e order by e.id;

-- id: patient_encounter_join
select p.id, p.insurance_id, p.city, e.diagnosis_code from patients p join encounters e on e.patient_id = p.id where p.id < 300 order by e.id;

-- id: filter_count
select count(*) filter (where state = 'CA'), count(*) filter (where city like 'S%') from patients;

-- id: ids_range
select count(*), min(id), max(id) from patients where id between 100 and 200;

-- id: visit_span
select min(visited_at), max(visited_at), extract(year from max(visited_at)) - extract(year from min(visited_at)) from encounters;

-- id: portal_accounts_ids
select id, patient_id, created_at from portal_accounts order by id;

-- id: join_on_masked_email
select count(*) from patients p join portal_accounts a on a.email = p.email;

-- id: cte_non_phi
with busy as (select patient_id, count(*) n from encounters group by 1) select n, count(*) from busy group by n order by n;

-- id: window_non_phi
select id, patient_id, rank() over (partition by patient_id order by visited_at) from encounters where patient_id < 500 order by id;
