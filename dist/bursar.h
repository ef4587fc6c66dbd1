/*
 * bursar/bursar.h - the installed entry point of the client library:
 * everything a program needs to ask bursard for a model and report what
 * happened. The API and its documentation are in agents/bursar.h,
 * installed beside this file with the headers it includes (agents/,
 * policies/), which keep their folder-qualified includes; the include
 * path `pkg-config --cflags bursar` gives finds them:
 *
 *     #include <bursar/bursar.h>
 *     cc app.c $(pkg-config --cflags --libs bursar)
 *
 * Installed as include/bursar/bursar.h by dist/CMakeLists.txt.
 */
#ifndef BURSAR_DIST_BURSAR_H
#define BURSAR_DIST_BURSAR_H

#include "agents/bursar.h"

#endif
