/* hub.h - fetching model folders from the Hugging Face hub, and listing installed ones.
 *
 * Protocol (as huggingface_hub's hf_api.py / file_download.py speak it):
 *   GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true  -> JSON: "sha" (the commit) and
 *       "siblings": [{"rfilename", "size", "lfs": {"sha256", "size"}}]
 *   GET {endpoint}/{repo}/resolve/{rev}/{filename}              -> the bytes, usually after a
 *       302 to a CDN; headers X-Repo-Commit, ETag, X-Linked-Size; errors carry X-Error-Code
 *       (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo).
 *
 * A fetch writes each file to "<dir>/<file>.part" first, resumes a .part with an HTTP Range
 * request (restarting when the server answers 200), checks the size and, when the listing
 * gives lfs.sha256, the SHA-256, then renames it into place, so "<dir>/<file>" is always
 * whole and verified. After each file, "<dir>/shoebox-model.json" (HUB_MANIFEST) records what
 * is there; "complete" turns true when every needed file is in place. Re-running a fetch skips
 * files already complete and verified.
 *
 * Thread rules: the functions share no state; hub_fetch() calls curl_global_init() on its
 * first use (libcurl's rules apply: call it first from main() when other threads use curl). */
#ifndef SHOEBOX_HUB_H
#define SHOEBOX_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sb_err;
struct sb_progress;

#define HUB_DEFAULT_ENDPOINT "https://huggingface.co"
#define HUB_DEFAULT_REVISION "main"
#define HUB_MANIFEST         "shoebox-model.json"
#define HUB_MAX_JSON         (16u << 20) /* cap on API and index JSON bodies */

struct hub_params {
    const char *endpoint; /* base URL, http or https, no trailing slash needed; NULL: default */
    const char *revision; /* branch, tag or commit; NULL: "main" */
    const char *token;    /* sent as "Authorization: Bearer <token>"; NULL or "": none */
    long connect_timeout; /* seconds */
    long low_speed_limit; /* abort when slower than this many bytes/s ... */
    long low_speed_time;  /* ... for this many seconds */
    /* Byte progress: update(user, file name, bytes done, bytes total) over all the files of
     * the fetch; stop_requested is polled while data arrives (then SB_ECANCELED, .part kept). */
    const struct sb_progress *progress;
};

/* endpoint and revision defaults, no token, connect timeout 30 s, abort below 1 KiB/s for
 * 60 s, no progress. */
struct hub_params hub_default_params(void);

/* One file of a repo, as the listing gives it. */
struct hub_file {
    char *name;      /* rfilename, e.g. "model.safetensors" */
    int64_t size;    /* bytes; -1 when the listing does not say */
    char sha256[65]; /* lowercase hex from lfs.sha256; "" for non-LFS files */
};

struct hub_listing {
    char *commit; /* "sha" of the listing (the resolved revision); NULL when absent */
    struct hub_file *files;
    size_t nfiles;
};
void hub_listing_free(struct hub_listing *l); /* NULL is a no-op */

/* Checks a repo id the way huggingface_hub's validate_repo_id does ("name" or "org/name";
 * letters, digits, '-', '_', '.'; no "--" or ".."; at most 96 characters per part), so it is
 * also safe as a folder name. SB_OK or SB_EINVAL with the reason. */
int hub_repo_check(const char *repo, struct sb_err *err);

/* The folder name for a repo: "org--name" (or "name"), as huggingface_hub's cache names it.
 * SB_OK, SB_EINVAL (bad repo) or SB_ETOOBIG (cap too small). */
int hub_repo_folder(const char *repo, char *buf, size_t cap, struct sb_err *err);

/* GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true. On success *out is a listing the
 * caller frees with hub_listing_free(). Errors: SB_EINVAL (bad repo or endpoint), SB_ENOENT
 * (repo or revision not found), SB_EACCES (gated or private: the message says to accept the
 * licence and set HF_TOKEN), SB_ENET (connection, timeout or other HTTP failures, with curl's
 * message), SB_EFORMAT (not the expected JSON), SB_ETOOBIG (over HUB_MAX_JSON), SB_ENOMEM. */
int hub_list_files(const struct hub_params *p, const char *repo, struct hub_listing **out,
                   struct sb_err *err);

/* Chooses the files a CLIP / SigLIP / VLM folder needs from a listing: config and tokenizer
 * files, then model.safetensors, or model.safetensors.index.json (whose shards hub_fetch adds
 * once it has read the index). Never .bin, TensorFlow, Flax or ONNX files, nor anything in a
 * subfolder. On success *out is a new listing (commit copied) the caller frees. SB_EMODEL when
 * the repo has no safetensors weights (saying when it only has PyTorch .bin weights) or no
 * config.json; SB_ENOMEM. */
int hub_select_files(const struct hub_listing *all, struct hub_listing **out, struct sb_err *err);

/* What a fetch did. */
struct hub_fetch_stats {
    size_t files;           /* needed files */
    size_t downloaded;      /* fetched in this run (whole or resumed) */
    size_t resumed;         /* of those, continued from a .part with a Range request */
    size_t skipped;         /* already complete and verified */
    int64_t bytes_total;    /* sum of the needed files' sizes */
    int64_t bytes_received; /* body bytes received in this run */
    char commit[64];        /* resolved commit ("" when the hub did not say) */
};

/* Downloads the needed files of repo (hub_select_files, plus the shards of an index) into the
 * folder dir, created when needed. stats (may be NULL) is filled on success and on failure.
 * Errors: those of hub_list_files and hub_select_files, for a file SB_ENOENT (404), SB_EACCES
 * (401/403), SB_ENET, SB_ECORRUPT (size or SHA-256 mismatch: the .part is removed and no final
 * file is left), SB_EIO and friends for the folder, SB_ECANCELED. The message names the file.
 * Files finished before a failure stay in place and are recorded in the manifest. */
int hub_fetch(const struct hub_params *p, const char *repo, const char *dir,
              struct hub_fetch_stats *stats, struct sb_err *err);

/* One folder under a models directory. */
struct hub_installed {
    char *folder;   /* its name, e.g. "openai--clip-vit-base-patch32" */
    char *path;     /* models_dir/folder */
    char *repo;     /* from the manifest; NULL for a folder shoebox did not fetch */
    char *revision; /* from the manifest, or NULL */
    char *commit;   /* from the manifest, or NULL */
    int64_t bytes;  /* size on disk of its regular files (.part files included) */
    size_t nfiles;  /* files the manifest lists (0 without one) */
    size_t npart;   /* unfinished .part files */
    bool complete;  /* manifest says complete, each listed file has its size, no .part left */
    bool loadable;  /* config.json and the weights (model.safetensors or index + shards) */
};

/* Lists the folders of models_dir, sorted by name. A models_dir that does not exist gives an
 * empty list. On success *out (NULL when *n is 0) is an array the caller frees with
 * hub_installed_free(*out, *n). Errors: SB_EIO / SB_EACCES (unreadable folder), SB_ENOMEM. */
int hub_list_installed(const char *models_dir, struct hub_installed **out, size_t *n,
                       struct sb_err *err);
void hub_installed_free(struct hub_installed *a, size_t n); /* NULL is a no-op */

/* SHA-256 (FIPS 180-4), streaming. */
struct hub_sha256 {
    uint32_t h[8];
    uint64_t nbytes;
    unsigned char block[64];
    size_t nblock;
};
void hub_sha256_init(struct hub_sha256 *s);
void hub_sha256_update(struct hub_sha256 *s, const void *data, size_t n);
/* Writes the digest as 64 lowercase hex digits and a NUL. */
void hub_sha256_final(struct hub_sha256 *s, char hex[65]);

#endif
