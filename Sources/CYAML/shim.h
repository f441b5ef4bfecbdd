// libyaml (Debian's libyaml-dev) for the node agent's kubeconfig reader. Its API has no variadic
// call, so Swift uses it as it is; release builds link libyaml.a (see the Makefile's static-libs).
#include <yaml.h>
