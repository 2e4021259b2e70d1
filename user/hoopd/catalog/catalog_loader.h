/* The catalog loader process's entry (catalog_loader.c): main() calls it for
 * `hoopd --catalog-loader UID:GID`, which only hoopd's catalog threads run. */
#ifndef HOOP_CATALOG_LOADER_H
#define HOOP_CATALOG_LOADER_H

int catalog_loader_main(int argc, char **argv);

#endif
