/* placeholder: being written */
typedef int kvt__placeholder_policy_s3fifo;
