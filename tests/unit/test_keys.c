#include <criterion/criterion.h>
Test(keys, placeholder) { cr_assert(1); }
