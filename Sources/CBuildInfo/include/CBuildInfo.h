// The plugin's version, fixed at build time (`bridge-ipam --version`).
#ifndef C_BUILD_INFO_H
#define C_BUILD_INFO_H

/// The release version, e.g. "0.2.0", or "0.2.0-dev" when built without `make`.
const char *bridge_ipam_version(void);

/// The git commit it was built from ("abc1234", "abc1234-dirty"), or "" when unknown.
const char *bridge_ipam_git_commit(void);

#endif
