// spillway/detail/option_type.hpp — how an option's type is named in a refusal ("expected a
// duration such as ..."), shared by the engine's config binding and the testkit host so both say it
// the same way.
#ifndef SPILLWAY_DETAIL_OPTION_TYPE_HPP
#define SPILLWAY_DETAIL_OPTION_TYPE_HPP

#include <spillway/plugin.h>

#include <cstdint>

namespace spillway::detail {

inline const char* option_type_label(uint32_t type) {
    switch (type) {
        case SW_OPT_STRING: return "a string";
        case SW_OPT_INT: return "an integer";
        case SW_OPT_DOUBLE: return "a number";
        case SW_OPT_BOOL: return "a boolean";
        case SW_OPT_DURATION: return "a duration such as \"250ms\" or \"2s\"";
        case SW_OPT_STRING_LIST: return "a list of strings";
        default: return "a value";
    }
}

}  // namespace spillway::detail

#endif
