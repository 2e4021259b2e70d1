/*
 * What a session is given beside the relay's bytes (session.h): its login, its session_start
 * record, and its wait for the catalog loader, which knows destinations and waiters but not
 * sessions.
 */
#include "session.h"

#include <stdio.h>
#include <string.h>

#include "record.h"
#include "daemon.h"
#include "netns.h"

void sess_set_login(struct session *s, const char *user, const char *database)
{
	if (s->user[0] || s->database[0])
		return;
	snprintf(s->user, sizeof(s->user), "%s", user ? user : "");
	snprintf(s->database, sizeof(s->database), "%s", database ? database : "");
}

int sess_record_change_user(struct session *s, const char *user, const char *database,
			    const char *plugin)
{
	return ev_change_user(sess_agent(s), user, database, plugin);
}

void sess_change_login(struct session *s, const char *user, const char *database)
{
	snprintf(s->user, sizeof(s->user), "%s", user ? user : "");
	snprintf(s->database, sizeof(s->database), "%s", database ? database : "");
	s->login_changed = 1;
}

void sess_record_start(struct session *s, const struct ev_session_start *e)
{
	if (s->recorded)
		return;
	s->recorded = 1;
	ev_session_start(sess_agent(s), e);
}

static void catalog_ready(struct cat_waiter *w)
{
	struct session *s = container_of(w, struct session, cat_wait);

	if (!s->dead)
		sess_resume(s);
}

static void dest_of(const struct session *s, struct cat_dest *d)
{
	memset(d, 0, sizeof(*d));
	d->netns_ino = s->netns_ino;
	d->agent_only = s->up_netns == NETNS_DIAL_AGENT;
	d->family = s->o.orig_family;
	memcpy(d->addr, s->o.orig_addr, sizeof(d->addr));
	d->port = s->o.orig_port;
	snprintf(d->dst, sizeof(d->dst), "%s", s->dst);
	d->target_id = (int)s->o.target_id;
}

int catalog_for(struct session *s, const char *db_user, const char *database,
		struct catbox **out)
{
	struct cat_dest d;

	dest_of(s, &d);
	s->cat_wait.ready = catalog_ready;
	return catalog_get(&d, db_user, database, &s->cat_wait, out);
}

void catalog_stale(struct session *s, const char *database)
{
	catalog_reload(s->dst, database);
}
