/*
 * bcryptprimitives.dll with the one export Wine 8 lacks: ProcessPrng, which
 * Go's Windows runtime (1.24 and later) calls at start for its random bytes.
 * It forwards to RtlGenRandom (advapi32's SystemFunction036), as Wine's own
 * later versions do. Only for running tests under Wine; never shipped.
 *
 * x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll processprng.c processprng.def -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T size)
{
	/* RtlGenRandom takes a ULONG: hand it at most 1 GiB at a time. */
	while (size > 0) {
		ULONG n = size > 0x40000000 ? 0x40000000 : (ULONG)size;
		if (!SystemFunction036(data, n))
			return FALSE;
		data += n;
		size -= n;
	}
	return TRUE;
}
