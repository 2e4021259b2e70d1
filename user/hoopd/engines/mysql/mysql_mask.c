/* Interim: masking of MySQL rows is not wired yet; with masking on, rows are withheld. */
#include "mysql_int.h"
#include "mask_live.h"

void my_mask_begin(struct my *m, const char *sql, size_t len, const struct sqlfacts *f, int n)
{
}
int my_mask_coldef(struct my *m, const uint8_t *p, size_t len, uint64_t i)
{
	return 0;
}
int my_mask_plan(struct my *m)
{
	return 0;
}
int my_mask_row(struct my *m, const uint8_t *p, size_t len)
{
	if (masking_enabled())
		return my_violation(m, "database", "masking of MySQL rows is not built yet");
	return my_forward(m, p, len);
}
int my_mask_err(struct my *m, const uint8_t *p, size_t len)
{
	return my_forward(m, p, len);
}
char *my_mask_json(struct my *m)
{
	return NULL;
}
void my_mask_result_end(struct my *m)
{
}
void my_mask_end(struct my *m)
{
}
int my_mask_withheld(const struct my *m)
{
	return 0;
}
