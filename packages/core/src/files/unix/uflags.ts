/** unix_sk_entry uflags: a socket outside the tree, in the images only to be connected to again. */
export const USK_EXTERN = 1;
/** unix_sk_entry uflags: the RPC client's socket to criu itself, dumped closed (see service.ts). */
export const USK_SERVICE = 2;
