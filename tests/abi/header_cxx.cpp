// plugin.h compiles as C++20 with every warning on, on its own and before anything else.
#include <spillway/plugin.h>

static_assert(sizeof(sw_event) == 208);
static_assert(SW_ABI_MAGIC == 0x53574C31u);
