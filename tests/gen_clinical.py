#!/usr/bin/python3
"""A synthetic clinical dataset for the masking tests: seeded, no network, loaded with COPY
straight into a PostgreSQL database (not through hoopd), plus a JSON file of every raw PHI value
it holds, in the exact spellings stored, for the leak scanner.

  patients(id, mrn, first_name, last_name, ssn, dob, email, phone, address, city, state, zip,
           insurance_id)       insurance_id: a 9-digit business id, not PHI (never an SSN's digits)
  encounters(id, patient_id, clinic_id, visited_at, diagnosis_code, charge, notes)
                               ~30% of notes embed the patient's SSN, MRN, phone or email; a few
                               a card number or an IPv4 address
  portal_accounts(id, patient_id, email, created_at)   a second home of some patients' emails
  messages(id, patient_id, sent_at, body, meta jsonb)  portal messages: identifiers spelled freely
                               in text no policy rule names, and contact data in JSON
  clinics(id, name, city, state, beds, opened)          no PHI
  view patient_contacts AS SELECT id, email AS contact, upper(last_name) AS name FROM patients
  function patient_label(int): an application's helper that returns a patient's SSN

Every value is made from random.Random(seed), so a seed always gives the same dataset.

Usage: tests/gen_clinical.py --dsn "host=127.0.0.1 port=5432 user=postgres dbname=clinical"
                             --phi-json /tmp/phi.json [--seed 7] [--patients 10000]
                             [--encounters 30000]
"""
import argparse
import datetime
import json
import random
import sys
import time

FIRST = ("james mary robert patricia john jennifer michael linda david elizabeth william barbara "
         "richard susan joseph jessica thomas sarah charles karen christopher lisa daniel nancy "
         "matthew betty anthony margaret mark sandra donald ashley steven kimberly paul emily "
         "andrew donna joshua michelle kenneth carol kevin amanda brian dorothy george melissa "
         "timothy deborah ronald stephanie edward rebecca jason sharon jeffrey laura ryan cynthia "
         "jacob kathleen gary amy nicholas angela eric shirley jonathan anna stephen brenda larry "
         "pamela justin emma scott nicole brandon helen benjamin samantha samuel katherine "
         "gregory christine alexander debra frank rachel patrick carolyn raymond janet jack "
         "catherine dennis maria jerry heather tyler diane aaron ruth jose julie adam olivia "
         "nathan joyce henry virginia douglas victoria zachary kelly peter lauren kyle christina "
         "ethan joan walter evelyn noah judith jeremy megan christian andrea keith cheryl roger "
         "hannah terry jacqueline gerald martha harold gloria sean teresa austin ann carl sara "
         "arthur madison lawrence frances dylan kathryn jesse janice jordan jean bryan abigail "
         "billy alice joe judy bruce sophia gabriel grace logan denise albert amber willie doris "
         "alan marilyn juan danielle wayne beverly elijah isabella randy theresa roy diana "
         "vincent natalie ralph brittany eugene charlotte russell marie bobby kayla mason alexis "
         "philip lori").split()
LAST = ("smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez "
        "lopez gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson "
        "white harris sanchez clark ramirez lewis robinson walker young allen king wright scott "
        "torres nguyen hill flores green adams nelson baker hall rivera campbell mitchell carter "
        "roberts gomez phillips evans turner diaz parker cruz edwards collins reyes stewart "
        "morris morales murphy cook rogers gutierrez ortiz morgan cooper peterson bailey reed "
        "kelly howard ramos kim cox ward richardson watson brooks chavez wood james bennett gray "
        "mendoza ruiz hughes price alvarez castillo sanders patel myers long ross foster jimenez "
        "powell jenkins perry russell sullivan bell coleman butler henderson barnes gonzales "
        "fisher vasquez simmons romero jordan patterson alexander hamilton graham reynolds "
        "griffin wallace moreno west cole hayes bryant herrera gibson ellis tran medina aguilar "
        "stevens murray ford castro marshall owens harrison fernandez mcdonald woods washington "
        "kennedy wells vargas henry chen freeman webb tucker guzman burns crawford olson simpson "
        "porter hunter gordon mendez silva shaw snyder mason dixon munoz hunt hicks holmes "
        "palmer wagner black robertson boyd rose stone salazar fox warren mills meyer rice "
        "schmidt garza daniels ferguson nichols stephens soto weaver ryan gardner payne grant "
        "dunn kelley spencer hawkins arnold pierce vazquez hansen peters santos hart bradley "
        "knight elliott cunningham duncan armstrong hudson carroll lane riley andrews alvarado "
        "ray delgado berry perkins hoffman johnston matthews pena richards contreras willis "
        "carpenter lawrence sandoval").split()
CITIES = [("Springfield", "IL", "627"), ("Riverside", "CA", "925"), ("Franklin", "TN", "370"),
          ("Greenville", "SC", "296"), ("Madison", "WI", "537"), ("Georgetown", "TX", "786"),
          ("Salem", "OR", "973"), ("Fairview", "NJ", "070"), ("Clinton", "IA", "527"),
          ("Arlington", "VA", "222"), ("Ashland", "KY", "411"), ("Dover", "DE", "199"),
          ("Burlington", "VT", "054"), ("Oxford", "MS", "386"), ("Jackson", "WY", "830"),
          ("Auburn", "AL", "368"), ("Milton", "MA", "021"), ("Newport", "RI", "028"),
          ("Clayton", "MO", "631"), ("Hudson", "NY", "125")]
STREETS = ("Maple Oak Pine Cedar Elm Washington Lake Hill Park Main Church High Mill River Spring "
           "Walnut Chestnut Sunset Ridge Meadow Forest Willow Highland Jefferson Lincoln").split()
SUFFIX = ["St", "Ave", "Rd", "Blvd", "Ln", "Dr", "Ct", "Way", "Pl"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com", "clinic.example"]
ICD10 = ["E11.9", "I10", "J06.9", "M54.5", "F41.1", "K21.9", "E78.5", "J45.909", "N39.0",
         "R51.9", "Z00.00", "M25.561", "G43.909", "L30.9", "H10.9", "R05.9", "E66.9", "F32.A"]
CLEAN_NOTES = [
    "Follow-up visit; patient reports improvement. Continue current regimen.",
    "BP 128/82, HR 71. Counselled on diet and exercise.",
    "Refilled metformin 500 mg twice daily. Recheck A1c in three months.",
    "Mild seasonal allergies; start loratadine. Return if symptoms persist.",
    "Lower back pain after lifting; physical therapy referral placed.",
    "Annual wellness exam, no acute complaints. Vaccines up to date.",
    "Anxiety symptoms stable on sertraline; next review in six weeks.",
    "Reflux controlled with omeprazole; avoid late meals.",
    "Knee pain on stairs; x-ray ordered, ice and rest advised.",
    "Headache resolved; no red flags on neuro exam.",
]
PHI_NOTES = {
    "ssn": ["Identity verified with SSN {v} at check-in.",
            "Insurance form lists social security number {v}; copy scanned.",
            "Pt gave SSN {v} for the billing office."],
    "mrn": ["Chart {v} reviewed with the attending; plan unchanged.",
            "Lab results filed under {v}, see prior encounter.",
            "Merged duplicate record into {v}."],
    "phone": ["Patient asked to be called back at {v} about results.",
              "Pharmacy will phone {v} when the refill is ready.",
              "Daughter's contact for emergencies: {v}."],
    "email": ["Sent the visit summary to {v} as requested.",
              "Portal invite emailed to {v}; pending activation.",
              "Patient prefers email: {v}."],
    "card": ["Copay paid by card {v} at the front desk."],
    "ipv4": ["Telehealth session connected from {v}; video quality fair."],
}


def make_ssn(rng):
    while True:
        area = rng.randint(1, 899)
        if area != 666:
            return "%03d-%02d-%04d" % (area, rng.randint(1, 99), rng.randint(1, 9999))


def make_phone(rng, style):
    area = "%d%d%d" % (rng.randint(2, 9), rng.randint(0, 8), rng.randint(0, 9))
    while True:
        ex = "%d%02d" % (rng.randint(2, 9), rng.randint(0, 99))
        if ex[1:] != "11":
            break
    line = "%04d" % rng.randint(0, 9999)
    if style == 0:
        return "(%s) %s-%s" % (area, ex, line)
    if style == 1:
        return "%s-%s-%s" % (area, ex, line)
    return "+1%s%s%s" % (area, ex, line)


def luhn_complete(digits):
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d)
        if i % 2 == 0:  # doubled once the check digit is appended
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return digits + str((10 - total % 10) % 10)


def make_card(rng):
    body = "4" + "".join(str(rng.randint(0, 9)) for _ in range(14))
    d = luhn_complete(body)
    return "%s %s %s %s" % (d[0:4], d[4:8], d[8:12], d[12:16]) if rng.random() < 0.5 else \
        "%s-%s-%s-%s" % (d[0:4], d[4:8], d[8:12], d[12:16])


def digits(s):
    return "".join(ch for ch in s if ch.isdigit())


def generate(seed=7, n_patients=10000, n_encounters=30000):
    """The dataset as lists of row tuples, and the PHI summary."""
    rng = random.Random(seed)
    ssns, mrns, emails, phone_digits = set(), set(), set(), set()
    patients = []
    for pid in range(1, n_patients + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        while True:
            ssn = make_ssn(rng)
            if ssn not in ssns:
                break
        ssns.add(ssn)
        while True:
            mrn = "MRN-%08d" % rng.randint(0, 99999999)
            if mrn not in mrns:
                break
        mrns.add(mrn)
        while True:
            shape = rng.randint(0, 2)
            local = ("%s.%s%d" % (first, last, rng.randint(1, 999)) if shape == 0 else
                     "%s_%s%d" % (first[0], last, rng.randint(1, 9999)) if shape == 1 else
                     "%s%s%d" % (first, last[0], rng.randint(10, 99999)))
            email = "%s@%s" % (local, rng.choice(DOMAINS))
            if email not in emails:
                break
        emails.add(email)
        while True:
            phone = make_phone(rng, rng.randint(0, 2))
            if digits(phone)[-10:] not in phone_digits:
                break
        phone_digits.add(digits(phone)[-10:])
        dob = datetime.date(1930, 1, 1) + datetime.timedelta(days=rng.randint(0, 31000))
        city, state, zip3 = rng.choice(CITIES)
        address = "%d %s %s" % (rng.randint(1, 9999), rng.choice(STREETS), rng.choice(SUFFIX))
        patients.append([pid, mrn, first.capitalize(), last.capitalize(), ssn, dob, email, phone,
                         address, city, state, zip3 + "%02d" % rng.randint(0, 99), None])
    # insurance_id: 9 bare digits, never one of the SSNs' digits, forwards or backwards (the
    # leak scanner would call it one)
    ssn_digits = {digits(s) for s in ssns}
    used = set()
    for p in patients:
        while True:
            ins = "%09d" % rng.randint(100000000, 999999999)
            if ins not in ssn_digits and ins[::-1] not in ssn_digits and ins not in used:
                break
        used.add(ins)
        p[12] = ins

    clinics = []
    for cid in range(1, 41):
        city, state, _ = CITIES[cid % len(CITIES)]
        clinics.append((cid, "%s %s Clinic" % (city, rng.choice(["Family", "Community", "Valley",
                                                                   "Northside", "General"])),
                        city, state, rng.randint(5, 400),
                        datetime.date(1960, 1, 1) + datetime.timedelta(days=rng.randint(0, 20000))))

    cards, ips = [], []
    embedded = {"ssn": 0, "mrn": 0, "phone": 0, "email": 0, "card": 0, "ipv4": 0}
    note_kind = {}
    encounters = []
    t0 = datetime.datetime(2019, 1, 1, tzinfo=datetime.timezone.utc)
    for eid in range(1, n_encounters + 1):
        p = patients[rng.randrange(n_patients)]
        r = rng.random()
        if r < 0.30:
            kind = ("ssn", "mrn", "phone", "email")[rng.randrange(4)]
            v = {"ssn": p[4], "mrn": p[1], "phone": p[7], "email": p[6]}[kind]
        elif r < 0.315:
            kind, v = "card", make_card(rng)
            cards.append(v)
        elif r < 0.33:
            kind = "ipv4"
            v = "10.%d.%d.%d" % (rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254))
            ips.append(v)
        else:
            kind, v = None, None
        if kind:
            notes = rng.choice(PHI_NOTES[kind]).format(v=v)
            embedded[kind] += 1
            note_kind[eid] = kind
        else:
            notes = rng.choice(CLEAN_NOTES)
        visited = t0 + datetime.timedelta(seconds=rng.randint(0, 6 * 365 * 86400))
        encounters.append((eid, p[0], rng.randint(1, len(clinics)), visited, rng.choice(ICD10),
                           "%d.%02d" % (rng.randint(40, 2500), rng.randint(0, 99)), notes))

    portal = []
    for i, p in enumerate(rng.sample(patients, n_patients // 4), 1):
        portal.append((i, p[0], p[6], t0 + datetime.timedelta(days=rng.randint(0, 2000))))

    # Portal messages: free text no policy names, with identifiers spelled as people write them
    # (SSN with spaces, phone with dots, e-mail in capitals), and a JSON column of contact data.
    messages = []
    for mid in range(1, n_patients // 2 + 1):
        p = patients[rng.randrange(n_patients)]
        d = digits(p[7])[-10:]
        spelled = rng.choice([
            "Please update my SSN to %s, thanks." % p[4].replace("-", " "),
            "You can reach me at %s after 5pm." % rng.choice([
                "%s.%s.%s" % (d[:3], d[3:6], d[6:]), "%s %s %s" % (d[:3], d[3:6], d[6:]),
                "1-%s-%s-%s" % (d[:3], d[3:6], d[6:]), "+1 (%s) %s-%s" % (d[:3], d[3:6], d[6:]),
                "(%s)%s-%s" % (d[:3], d[3:6], d[6:])]),
            "New address for the statements: %s" % p[6].upper(),
            "My record number is %s, please check the lab results." % p[1],
            'Hi,\n"please" call %s, or write to %s\tthanks, \\ %s' % (p[7], p[6], p[1]),
            "Thanks for the quick reply!",
            "Can I move my appointment to next week?",
        ])
        meta = json.dumps({"reply_to": p[6], "callback": p[7], "channel": "portal"}) \
            if rng.random() < 0.5 else json.dumps({"channel": "portal"})
        messages.append((mid, p[0], t0 + datetime.timedelta(seconds=rng.randint(0, 6 * 365 * 86400)),
                         spelled, meta))

    phones = [p[7] for p in patients]
    phi = {
        "seed": seed,
        "ssn": sorted(ssns),
        "ssn_digits": sorted(ssn_digits),
        "mrn": sorted(mrns),
        "mrn_digits": sorted(m[4:] for m in mrns),
        "email": sorted(emails),
        "phone": sorted(phones),
        "phone_digits": sorted(phone_digits),
        "card": sorted(cards),
        "card_digits": sorted(digits(c) for c in cards),
        "ipv4": sorted(set(ips)),
        "insurance_id": sorted(p[12] for p in patients),
        "notes_embedded": embedded,
        "note_kind": {str(k): v for k, v in note_kind.items()},
        "counts": {"patients": n_patients, "encounters": n_encounters, "clinics": len(clinics),
                   "portal_accounts": len(portal), "messages": len(messages)},
    }
    return {"patients": patients, "clinics": clinics, "encounters": encounters,
            "portal_accounts": portal, "messages": messages}, phi


SCHEMA = """
drop view if exists patient_contacts;
drop function if exists patient_label(int);
drop table if exists messages, portal_accounts, encounters, clinics, patients;
create table patients (
    id int primary key, mrn text not null, first_name text, last_name text, ssn text, dob date,
    email text, phone text, address text, city text, state text, zip text, insurance_id text);
create table clinics (id int primary key, name text, city text, state text, beds int, opened date);
create table encounters (
    id int primary key, patient_id int references patients, clinic_id int references clinics,
    visited_at timestamptz, diagnosis_code text, charge numeric(10,2), notes text);
create table portal_accounts (id int primary key, patient_id int references patients, email text,
    created_at timestamptz);
create table messages (id int primary key, patient_id int references patients, sent_at timestamptz,
    body text, meta jsonb);
"""

AFTER = """
create index on encounters (patient_id);
create view patient_contacts as select id, email as contact, upper(last_name) as name from patients;
create function patient_label(pid int) returns text language sql stable as
    $$ select last_name || ' ' || ssn from patients where id = pid $$;
analyze;
"""


def load(dsn, data):
    """Create the schema and COPY the rows in, over one direct connection."""
    import psycopg
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(SCHEMA)
        cols = {"patients": "id, mrn, first_name, last_name, ssn, dob, email, phone, address, city, "
                            "state, zip, insurance_id",
                "clinics": "id, name, city, state, beds, opened",
                "encounters": "id, patient_id, clinic_id, visited_at, diagnosis_code, charge, notes",
                "portal_accounts": "id, patient_id, email, created_at",
                "messages": "id, patient_id, sent_at, body, meta"}
        for table in ("patients", "clinics", "encounters", "portal_accounts", "messages"):
            with c.cursor().copy("copy %s (%s) from stdin" % (table, cols[table])) as cp:
                for row in data[table]:
                    cp.write_row(row)
        c.execute(AFTER)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--phi-json", required=True)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--patients", type=int, default=10000)
    ap.add_argument("--encounters", type=int, default=30000)
    a = ap.parse_args()
    t = time.time()
    data, phi = generate(a.seed, a.patients, a.encounters)
    load(a.dsn, data)
    with open(a.phi_json, "w") as f:
        json.dump(phi, f)
    print("gen_clinical: %d patients, %d encounters in %.1fs" % (a.patients, a.encounters,
                                                                  time.time() - t))
    return 0


if __name__ == "__main__":
    sys.exit(main())
