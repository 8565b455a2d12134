/*
 * corral_netns.node — the one system call Node lacks for namespace work:
 * setns(2) on the calling thread. corral's netkit switches the thread into a
 * container's network namespace only long enough to open a netlink socket
 * there (a netlink socket belongs to the namespace it was created in), then
 * switches back. Plain Node-API in C, no dependencies beyond the Node headers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <node_api.h>

static napi_value throw_errno(napi_env env, const char *syscall, int err) {
  char msg[128];
  const char *code = err == EINVAL ? "EINVAL" : err == EPERM ? "EPERM" : err == EBADF ? "EBADF" : err == ENOMEM ? "ENOMEM" : "EUNKNOWN";
  snprintf(msg, sizeof msg, "%s failed: %s", syscall, strerror(err));
  napi_throw_error(env, code, msg);
  return NULL;
}

/* setns(fd, nstype): enter the namespace behind fd on this thread only. */
static napi_value js_setns(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd = -1, nstype = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
    napi_throw_type_error(env, NULL, "setns(fd, nstype) needs two numbers");
    return NULL;
  }
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &nstype) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "setns(fd, nstype) needs two numbers");
    return NULL;
  }
  if (setns(fd, nstype) != 0) return throw_errno(env, "setns", errno);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn, newnet;
  napi_create_function(env, "setns", NAPI_AUTO_LENGTH, js_setns, NULL, &fn);
  napi_set_named_property(env, exports, "setns", fn);
  napi_create_int32(env, CLONE_NEWNET, &newnet);
  napi_set_named_property(env, exports, "CLONE_NEWNET", newnet);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
