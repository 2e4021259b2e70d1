/* The fixed catalog and masking policy that tests/unit/test_maskplan.c and
 * fuzz/fuzz_maskplan.c plan against (the catalog is described in test_maskplan.c). Header only:
 * include it in one file. */
#ifndef HOOP_MASKPLAN_FIXTURE_H
#define HOOP_MASKPLAN_FIXTURE_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "mask.h"

static struct catalog *cat;
static struct mask_policy pol;

static void add_rule(const char *schema, const char *table, const char *column,
		     enum mask_style style, int keep_last)
{
	struct mask_column_rule *r = &pol.rules[pol.nrules++];

	snprintf(r->schema, sizeof(r->schema), "%s", schema);
	snprintf(r->table, sizeof(r->table), "%s", table);
	snprintf(r->column, sizeof(r->column), "%s", column);
	r->style = style;
	r->keep_last = keep_last;
	r->line = pol.nrules;
}

static void build_policy(void)
{
	memset(&pol, 0, sizeof(pol));
	pol.enabled = 1;
	pol.unknown_style = MASK_REDACT;
	add_rule("", "patients", "ssn", MASK_PARTIAL, 4);
	add_rule("", "*", "email", MASK_HASH, 0);
	add_rule("", "patients", "dob", MASK_REDACT, 0);
	add_rule("", "patients", "phone", MASK_FORMAT_PRESERVING, 0);
	add_rule("", "patients", "mrn", MASK_REDACT, 0);
	add_rule("", "patients", "first_name", MASK_REDACT, 0);
	add_rule("", "patients", "last_name", MASK_REDACT, 0);
	add_rule("archive", "visits", "reason", MASK_NULL, 0);
	add_rule("", "v_zip", "zip", MASK_REDACT, 0);
	add_rule("", "patients", "address", MASK_NULL, 0);
	/* encounters.notes is left to the detectors */
}

static void rel(uint32_t oid, const char *schema, const char *name, char kind, const char *viewdef,
		const char *cols)
{
	struct cat_rel *r = cat_add_rel(cat, oid, schema, name, kind, viewdef);
	char buf[512], *save = NULL;
	int16_t att = 1;

	if (!r) {
		fprintf(stderr, "cat_add_rel %s: %s\n", name, strerror(errno));
		exit(2);
	}
	snprintf(buf, sizeof(buf), "%s", cols);
	for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save))
		if (cat_add_col(r, att++, t, 25)) {
			fprintf(stderr, "cat_add_col %s.%s failed\n", name, t);
			exit(2);
		}
}

static void build_catalog(void)
{
	cat = cat_new();
	if (!cat)
		exit(2);
	rel(16001, "public", "patients", 'r', NULL,
	    "id mrn first_name last_name ssn dob email phone address city zip");
	rel(16002, "public", "encounters", 'r', NULL, "id patient_id diagnosis notes visited_at");
	rel(16003, "public", "patient_contacts", 'v',
	    " SELECT patients.id,\n    patients.email AS contact,\n    upper(patients.last_name) "
	    "AS "
	    "name\n   FROM patients;",
	    "id contact name");
	rel(16004, "public", "v_safe", 'v', " SELECT patients.id, patients.city FROM patients;",
	    "id city");
	rel(16005, "public", "v_zip", 'v', " SELECT patients.id, patients.zip FROM patients;",
	    "id zip");
	rel(16006, "public", "v_contacts2", 'v',
	    "SELECT patient_contacts.contact, patient_contacts.name FROM patient_contacts",
	    "contact name");
	rel(16007, "public", "v_fn", 'v',
	    "SELECT patients.id, get_patient_ssn(patients.id) AS s FROM patients", "id s");
	rel(16008, "public", "v_cycle_a", 'v', "SELECT v_cycle_b.x FROM v_cycle_b", "x");
	rel(16009, "public", "v_cycle_b", 'v', "SELECT v_cycle_a.x FROM v_cycle_a", "x");
	rel(16010, "public", "v_star", 'v', "SELECT * FROM patients",
	    "id mrn first_name last_name ssn dob email phone address city zip");
	rel(16011, "public", "mv_emails", 'm', "SELECT patients.id, patients.email FROM patients",
	    "id email");
	rel(16012, "public", "mv_plain", 'm', NULL, "id ssn email");
	rel(16013, "archive", "notes", 'r', NULL, "id body ssn");
	rel(16014, "public", "visits", 'r', NULL, "id patient_id reason");
	rel(16015, "archive", "visits", 'r', NULL, "id patient_id reason archived_at");
	rel(16016, "public", "notes", 'r', NULL, "id body");
	rel(16017, "public", "v_bad", 'v', "this is not sql", "a");
	rel(16018, "public", "patients_2020", 'r', NULL,
	    "id mrn first_name last_name ssn dob email phone address city zip");
	if (cat_index(cat) || !cat_rel_by_oid(cat, 16018)) {
		fprintf(stderr, "catalog: cannot index\n");
		exit(2);
	}
	((struct cat_rel *)cat_rel_by_oid(cat, 16018))->parent_oid = 16001;
	if (cat_add_function(cat, "public", "get_patient_ssn") ||
	    cat_add_operator(cat, "~~~", "pg_notify", 1) ||
	    cat_add_operator(cat, "^@", "pg_notify", 1) ||
	    cat_add_operator(cat, "%%%", "ts_rewrite", 1) ||
	    cat_add_operator(cat, "<<<", "get_patient_ssn", 1) ||
	    cat_add_operator(cat, "<->", "citext_distance", 0) ||
	    cat_add_operator(cat, "%>", "word_similarity_op", 0) ||
	    cat_add_code_type(cat, "money", "leak_money") || cat_add_code_type(cat, "us_zip", "") ||
	    cat_index(cat)) {
		fprintf(stderr, "catalog: cannot build\n");
		exit(2);
	}
}

#endif
