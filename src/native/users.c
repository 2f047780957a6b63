/*
 * users.c: lookupUser / lookupGroup, names to ids (getpwnam, getpwuid, getgrnam, getgrouplist).
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include "soad.h"
#include "glibc.h"

/* An errno a lookup may leave for a name that simply does not exist. */
static bool not_found(int err) {
  return err == 0 || err == ENOENT || err == ESRCH || err == EBADF || err == EPERM;
}

/* The user by uid (by_uid) or by name; *pw NULL if unknown. 0, or -1 with errno (of the lookup). */
static int user_find(bool by_uid, uint32_t uid, const char *name, struct passwd **pw) {
  errno = 0;
  *pw = by_uid ? getpwuid((uid_t)uid) : getpwnam(name);
  if (*pw == NULL && !not_found(errno)) return -1;
  return 0;
}

/* The groups of pw (its own gid first, as getgrouplist gives them), malloc'd, into *groups and *count (0 if they
 * cannot be read). 0, or -1 with errno ENOMEM. */
static int user_groups(const struct passwd *pw, gid_t **groups, int *count) {
  int ngroups = 64;
  *groups = NULL;
  for (int tries = 0; tries < 4; tries++) {
    gid_t *grown = realloc(*groups, (size_t)ngroups * sizeof **groups);
    if (grown == NULL) {
      free(*groups);
      *groups = NULL;
      errno = ENOMEM;
      return -1;
    }
    *groups = grown;
    int n = ngroups;
#ifdef __APPLE__
    int rc = getgrouplist(pw->pw_name, (int)pw->pw_gid, (int *)*groups, &n); /* macOS takes int */
#else
    int rc = getgrouplist(pw->pw_name, pw->pw_gid, *groups, &n);
#endif
    if (rc >= 0) {
      ngroups = n;
      break;
    }
    ngroups = n > ngroups ? n : ngroups * 4;
    if (tries == 3) ngroups = 0;
  }
  *count = ngroups;
  return 0;
}

/* { uid, gid, name, home, shell, groups }. */
static napi_value user_result(napi_env env, const struct passwd *pw, const gid_t *groups, int ngroups) {
  napi_value result, array, v;
  NAPI_CALL(env, napi_create_object(env, &result));
  NAPI_CALL(env, set_int(env, result, "uid", pw->pw_uid));
  NAPI_CALL(env, set_int(env, result, "gid", pw->pw_gid));
  NAPI_CALL(env, set_string(env, result, "name", pw->pw_name));
  NAPI_CALL(env, set_string(env, result, "home", pw->pw_dir));
  NAPI_CALL(env, set_string(env, result, "shell", pw->pw_shell != NULL ? pw->pw_shell : ""));
  NAPI_CALL(env, napi_create_array_with_length(env, (size_t)ngroups, &array));
  for (int i = 0; i < ngroups; i++) {
    NAPI_CALL(env, napi_create_uint32(env, groups[i], &v));
    NAPI_CALL(env, napi_set_element(env, array, (uint32_t)i, v));
  }
  NAPI_CALL(env, napi_set_named_property(env, result, "groups", array));
  return result;
}

/* lookupUser(name | uid) -> { uid, gid, name, home, shell, groups } or null if unknown. */
napi_value lookup_user(napi_env env, napi_callback_info info) {
  ARGS(1);
  napi_valuetype t;
  NAPI_CALL(env, napi_typeof(env, argv[0], &t));
  uint32_t uid = 0;
  char *name = NULL;
  if (t == napi_number) {
    if (!get_id(env, argv[0], &uid)) return throw_type(env, "lookupUser: a uid is a whole number 0..4294967294");
  } else if ((name = get_string(env, argv[0], NULL)) == NULL) {
    return throw_type(env, "lookupUser(name | uid)");
  }
  struct passwd *pw;
  int r = user_find(name == NULL, uid, name, &pw);
  int err = errno;
  free(name);
  if (r < 0) return throw_errno(env, "getpwnam", err);
  if (pw == NULL) return make_null(env);
  gid_t *groups;
  int ngroups;
  if (user_groups(pw, &groups, &ngroups) < 0) return throw_errno(env, "realloc", errno);
  napi_value result = user_result(env, pw, groups, ngroups);
  free(groups);
  return result;
}

/* The group's gid by name; *found false if unknown. 0, or -1 with errno (of getgrnam). */
static int group_find(const char *name, gid_t *gid, bool *found) {
  errno = 0;
  struct group *gr = getgrnam(name);
  *found = gr != NULL;
  if (gr != NULL) *gid = gr->gr_gid;
  else if (!not_found(errno)) return -1;
  return 0;
}

/* lookupGroup(name) -> gid or null if unknown. */
napi_value lookup_group(napi_env env, napi_callback_info info) {
  ARGS(1);
  char *name = get_string(env, argv[0], NULL);
  if (name == NULL) return throw_type(env, "lookupGroup(name)");
  gid_t gid = 0;
  bool found;
  int r = group_find(name, &gid, &found);
  int err = errno;
  free(name);
  if (r < 0) return throw_errno(env, "getgrnam", err);
  return found ? make_int(env, gid) : make_null(env);
}
