/* Keep in step with the rockspec's version. */
#ifndef LH_VERSION
#define LH_VERSION "0.1.0"
#endif
