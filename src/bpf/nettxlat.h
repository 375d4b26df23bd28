/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_NETTXLAT_H
#define NETBPF_NETTXLAT_H

#include "common/hist.h"

/* Histogram key: the transmitting device's name with -D, else all zeros (one histogram). */
struct nettxlat_key {
	char dev[16];
};

#endif
