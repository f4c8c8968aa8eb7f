// Filled by the hostile-input work of issue 19.
#include "hostile_engine.hpp"

#include <gtest/gtest.h>
