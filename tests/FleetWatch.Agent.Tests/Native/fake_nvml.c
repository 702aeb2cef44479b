/* A stand-in for libnvidia-ml.so.1 with the symbols the FleetWatch agent calls, so the real P/Invoke and
 * watchdog paths run in tests on machines without a GPU. Values are scripted through fake_nvml_set().
 * Return codes and enum values follow nvml.h (research/gpu-health-anchors.md section 3.2). */
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

typedef int nvmlReturn_t;
typedef void *nvmlDevice_t;
enum { OK = 0, UNINIT = 1, INVALID = 2, NOT_SUPPORTED = 3, GPU_IS_LOST = 15, DRIVER_NOT_LOADED = 9 };

static long long g_count = 8, g_lost = -1, g_hang_ms = 0, g_nvlink = 18, g_dbe = 0, g_init_fail = 0, g_inited = 0, g_calls = 0;
/* One scripted NVML event: device index and Xid (eventData) delivered by the next nvmlEventSetWait_v2. */
static long long g_event_gpu = -1, g_event_xid = 0, g_recovery = 0;
/* Health reads (rules 14, 21, 35), applied to GPU g_health_gpu (-1: every GPU).
 * inforom: 0 valid, 1 corrupt, 2 NOT_SUPPORTED. unrepairable: 0 no, 1 yes, 2 NOT_SUPPORTED.
 * fabric: 0 completed and healthy, 1 completed with degraded bandwidth and an unhealthy route, 2 NOT_SUPPORTED,
 * 3 registration in progress, 4 state NVML_GPU_FABRIC_STATE_NOT_SUPPORTED, 5 completed with a failed status (v3 always;
 * fabric_v2_only makes v3 an ARGUMENT_VERSION_MISMATCH as on drivers before healthSummary). */
static long long g_inforom = 0, g_unrepairable = 0, g_fabric = 0, g_fabric_v2_only = 0, g_health_gpu = -1, g_inforom_calls = 0;

int fake_nvml_set(const char *key, long long value) {
    if (!strcmp(key, "count")) g_count = value;
    else if (!strcmp(key, "lost_index")) g_lost = value;
    else if (!strcmp(key, "hang_ms")) g_hang_ms = value;
    else if (!strcmp(key, "nvlinks")) g_nvlink = value;
    else if (!strcmp(key, "dbe")) g_dbe = value;
    else if (!strcmp(key, "init_fail")) g_init_fail = value;
    else if (!strcmp(key, "event_gpu")) g_event_gpu = value;
    else if (!strcmp(key, "recovery")) g_recovery = value;
    else if (!strcmp(key, "event_xid")) g_event_xid = value;
    else if (!strcmp(key, "inforom")) g_inforom = value;
    else if (!strcmp(key, "unrepairable")) g_unrepairable = value;
    else if (!strcmp(key, "fabric")) g_fabric = value;
    else if (!strcmp(key, "fabric_v2_only")) g_fabric_v2_only = value;
    else if (!strcmp(key, "health_gpu")) g_health_gpu = value;
    else if (!strcmp(key, "inforom_calls")) g_inforom_calls = value;
    else return -1;
    return 0;
}
long long fake_nvml_calls(void) { return g_calls; }
long long fake_nvml_inforom_calls(void) { return g_inforom_calls; }

#define DEV(d) ((long)(d) - 1)
#define GUARD(d) do { g_calls++; if (!g_inited) return UNINIT; if (DEV(d) < 0 || DEV(d) >= g_count) return INVALID; if (DEV(d) == g_lost) return GPU_IS_LOST; } while (0)

nvmlReturn_t nvmlInit_v2(void) { g_calls++; if (g_init_fail) return DRIVER_NOT_LOADED; g_inited = 1; return OK; }
nvmlReturn_t nvmlShutdown(void) { g_inited = 0; return OK; }
nvmlReturn_t nvmlSystemGetDriverVersion(char *v, unsigned int n) { snprintf(v, n, "fake-570.00"); return OK; }
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *c) { g_calls++; if (!g_inited) return UNINIT; *c = (unsigned)g_count; return OK; }
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d) { g_calls++; if (i >= g_count) return INVALID; *d = (nvmlDevice_t)(long)(i + 1); return OK; }
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *u, unsigned int n) { GUARD(d); snprintf(u, n, "GPU-fa4e0000-0000-0000-0000-%012ld", DEV(d)); return OK; }
typedef struct { char legacy[16]; unsigned domain, bus, device, pciDeviceId, pciSubSystemId; char busId[32]; } nvmlPciInfo_t;
nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t *p) {
    GUARD(d); memset(p, 0, sizeof *p); p->bus = 0x18 + 0x10 * DEV(d);
    snprintf(p->busId, sizeof p->busId, "00000000:%02X:00.0", p->bus); return OK; }
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *s, unsigned int n) { GUARD(d); snprintf(s, n, "Fake H100 80GB HBM3"); return OK; }
/* Deprecated call: answers 100 °C more, so a test sees which call the agent used. */
nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *t) { GUARD(d); *t = 140 + DEV(d); return OK; }
typedef struct { unsigned int version; int sensorType; int temperature; } nvmlTemperature_t;
/* NVML 13: versioned struct; a wrong version is NVML_ERROR_ARGUMENT_VERSION_MISMATCH (25). */
nvmlReturn_t nvmlDeviceGetTemperatureV(nvmlDevice_t d, nvmlTemperature_t *t) {
    GUARD(d); if (t->version != (unsigned)(sizeof(nvmlTemperature_t) | (1u << 24))) return 25;
    t->temperature = 40 + (int)DEV(d); return OK; }
nvmlReturn_t nvmlDeviceGetTemperatureThreshold(nvmlDevice_t d, int type, unsigned int *t) { GUARD(d); *t = type == 0 ? 92 : 90; return OK; }
nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw) {
    GUARD(d); if (g_hang_ms > 0) usleep((useconds_t)(g_hang_ms * 1000)); *mw = 600000 + 1000 * DEV(d); return OK; }
nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t d, unsigned int *mw) { GUARD(d); *mw = 700000; return OK; }
typedef struct { unsigned gpu, memory; } nvmlUtilization_t;
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) { GUARD(d); u->gpu = 97; u->memory = 40; return OK; }
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) { GUARD(d); m->total = 85520809984ULL; m->used = 64424509440ULL; m->free = m->total - m->used; return OK; }
nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t d, int type, unsigned int *mhz) { GUARD(d); *mhz = type == 1 ? 1980 : 2619; return OK; }
nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t d, unsigned long long *r) { GUARD(d); *r = 0x4; return OK; }
nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t d, int type, int counter, unsigned long long *c) { GUARD(d); *c = type == 1 ? (unsigned long long)g_dbe : 3; return OK; }
/* Pre-Ampere page retirement: not supported on this (Hopper-like) fake. */
nvmlReturn_t nvmlDeviceGetRetiredPages(nvmlDevice_t d, int cause, unsigned int *n, unsigned long long *a) { GUARD(d); return NOT_SUPPORTED; }
nvmlReturn_t nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t d, int *p) { GUARD(d); return NOT_SUPPORTED; }
nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t d, unsigned *c, unsigned *u, unsigned *p, unsigned *f) { GUARD(d); *c = 1; *u = 0; *p = 0; *f = 0; return OK; }
nvmlReturn_t nvmlDeviceGetPcieReplayCounter(nvmlDevice_t d, unsigned int *v) { GUARD(d); *v = 2; return OK; }
nvmlReturn_t nvmlDeviceGetCurrPcieLinkGeneration(nvmlDevice_t d, unsigned int *v) { GUARD(d); *v = 5; return OK; }
nvmlReturn_t nvmlDeviceGetCurrPcieLinkWidth(nvmlDevice_t d, unsigned int *v) { GUARD(d); *v = 16; return OK; }
nvmlReturn_t nvmlDeviceGetMaxPcieLinkGeneration(nvmlDevice_t d, unsigned int *v) { GUARD(d); *v = 5; return OK; }
nvmlReturn_t nvmlDeviceGetMaxPcieLinkWidth(nvmlDevice_t d, unsigned int *v) { GUARD(d); *v = 16; return OK; }
nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t d, unsigned int link, int *active) {
    GUARD(d); if (g_nvlink == 0) return NOT_SUPPORTED; if (link >= g_nvlink) return INVALID; *active = 1; return OK; }
nvmlReturn_t nvmlDeviceGetNvLinkErrorCounter(nvmlDevice_t d, unsigned int link, int counter, unsigned long long *v) {
    GUARD(d); if (g_nvlink == 0) return NOT_SUPPORTED; *v = (unsigned long long)(counter * 10 + link); return OK; }
typedef struct { unsigned int fieldId, scopeId; long long timestamp, latencyUsec; int valueType; nvmlReturn_t nvmlReturn; unsigned long long value; } nvmlFieldValue_t;
nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t d, int count, nvmlFieldValue_t *values) {
    GUARD(d);
    for (int i = 0; i < count; i++) {
        values[i].valueType = 1; /* unsigned int */
        switch (values[i].fieldId) {
        case 82: values[i].nvmlReturn = OK; values[i].value = 45 + DEV(d); break;       /* MEMORY_TEMP */
        case 230: values[i].nvmlReturn = OK; values[i].value = (unsigned long long)g_recovery; break; /* GPU_RECOVERY_ACTION */
        case 270: values[i].valueType = 3; values[i].nvmlReturn = OK; values[i].value = 5000000000ULL + DEV(d); break; /* HW_THERM_SLOWDOWN ns (269 SW: NOT_SUPPORTED) */
        default: values[i].nvmlReturn = NOT_SUPPORTED; break;
        }
    }
    return OK;
}
typedef struct { nvmlDevice_t device; unsigned long long eventType, eventData; unsigned gi, ci; } nvmlEventData_t;
nvmlReturn_t nvmlEventSetCreate(void **set) { *set = (void *)1; return OK; }
nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t d, unsigned long long types, void *set) { GUARD(d); return OK; }
nvmlReturn_t nvmlEventSetWait_v2(void *set, nvmlEventData_t *data, unsigned int timeoutms) {
    if (g_event_gpu >= 0) {
        memset(data, 0, sizeof *data);
        data->device = (nvmlDevice_t)(long)(g_event_gpu + 1);
        data->eventType = 0x8; /* XidCriticalError */
        data->eventData = (unsigned long long)g_event_xid;
        g_event_gpu = -1;
        return OK;
    }
    usleep(timeoutms * 1000 > 50000 ? 50000 : timeoutms * 1000);
    return 10; /* TIMEOUT */
}
nvmlReturn_t nvmlEventSetFree(void *set) { return OK; }

#define HEALTH(d, v) ((g_health_gpu < 0 || DEV(d) == g_health_gpu) ? (v) : 0)
enum { CORRUPTED_INFOROM = 14, ARGUMENT_VERSION_MISMATCH = 25 };
nvmlReturn_t nvmlDeviceValidateInforom(nvmlDevice_t d) {
    GUARD(d); g_inforom_calls++;
    switch (HEALTH(d, g_inforom)) { case 1: return CORRUPTED_INFOROM; case 2: return NOT_SUPPORTED; default: return OK; } }
/* nvmlUnrepairableMemoryStatus_v1_t: one unsigned int, no version field (NVML 13.0). */
typedef struct { unsigned int bUnrepairableMemory; } nvmlUnrepairableMemoryStatus_v1_t;
nvmlReturn_t nvmlDeviceGetUnrepairableMemoryFlag_v1(nvmlDevice_t d, nvmlUnrepairableMemoryStatus_v1_t *s) {
    GUARD(d); if (HEALTH(d, g_unrepairable) == 2) return NOT_SUPPORTED; s->bUnrepairableMemory = HEALTH(d, g_unrepairable) == 1; return OK; }
/* nvmlGpuFabricInfo_v3_t as nvml.h declares it (state is an unsigned char, so the compiler pads as NVML's does). */
typedef struct { unsigned int version; unsigned char clusterUuid[16]; nvmlReturn_t status; unsigned int cliqueId;
                 unsigned char state; unsigned int healthMask; unsigned char healthSummary; } nvmlGpuFabricInfo_v3_t;
#define FABRIC_V3 ((unsigned)sizeof(nvmlGpuFabricInfo_v3_t) | (3u << 24))
#define FABRIC_V2 ((unsigned)offsetof(nvmlGpuFabricInfo_v3_t, healthSummary) | (2u << 24))
/* healthMask 2-bit fields (1 true, 2 false): degraded BW << 0, route recovery << 2, route unhealthy << 4, access timeout
 * recovery << 6; incorrect configuration << 8 (1 none). */
#define MASK_HEALTHY (2u | 2u << 2 | 2u << 4 | 2u << 6 | 1u << 8)
#define MASK_UNHEALTHY (1u | 2u << 2 | 1u << 4 | 2u << 6 | 1u << 8)
nvmlReturn_t nvmlDeviceGetGpuFabricInfoV(nvmlDevice_t d, nvmlGpuFabricInfo_v3_t *f) {
    GUARD(d);
    unsigned version = f->version;
    if (version != FABRIC_V3 && version != FABRIC_V2) return ARGUMENT_VERSION_MISMATCH;
    if (version == FABRIC_V3 && g_fabric_v2_only) return ARGUMENT_VERSION_MISMATCH;
    long long mode = HEALTH(d, g_fabric);
    if (mode == 2) return NOT_SUPPORTED;
    memset(f, 0, version == FABRIC_V3 ? sizeof *f : offsetof(nvmlGpuFabricInfo_v3_t, healthSummary));
    f->version = version; f->cliqueId = 7; f->state = 3; f->status = OK; f->healthMask = MASK_HEALTHY;
    if (version == FABRIC_V3) f->healthSummary = 1;
    switch (mode) {
    case 1: f->healthMask = MASK_UNHEALTHY; if (version == FABRIC_V3) f->healthSummary = 2; break;
    case 3: f->state = 2; f->healthMask = 0; break;
    case 4: f->state = 0; f->healthMask = 0; break;
    case 5: f->status = 999; break;
    }
    return OK;
}
