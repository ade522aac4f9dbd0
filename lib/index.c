/* placeholder: being written */
typedef int kvt__placeholder_index;
