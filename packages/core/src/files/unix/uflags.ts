/** unix_sk_entry uflags: a socket outside the tree, in the images only to be connected to again. */
export const USK_EXTERN = 1;
