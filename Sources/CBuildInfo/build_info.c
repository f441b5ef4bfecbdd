// `make` writes .build/buildinfo/bridge_ipam_build.h (the git commit, and the version from the
// file VERSION) and puts its directory on the include path. Only this file
// includes it, so a new commit recompiles one C file; a plain `swift build` has no such header
// and gets the development version of the file VERSION (Tests/integration/test-manifest.sh checks
// that the two agree) without a commit.
#include "CBuildInfo.h"

#if __has_include(<bridge_ipam_build.h>)
#include <bridge_ipam_build.h>
#endif

#ifndef BRIDGE_IPAM_VERSION
#define BRIDGE_IPAM_VERSION "0.2.0-dev"
#endif

#ifndef BRIDGE_IPAM_GIT_COMMIT
#define BRIDGE_IPAM_GIT_COMMIT ""
#endif

const char *bridge_ipam_version(void) { return BRIDGE_IPAM_VERSION; }

const char *bridge_ipam_git_commit(void) { return BRIDGE_IPAM_GIT_COMMIT; }
