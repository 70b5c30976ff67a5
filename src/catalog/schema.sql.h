/* schema.sql.h - catalog migrations, applied in order; PRAGMA user_version = index + 1.
 * Never edit a released migration: add a new one. */
static const char *const catalog_migrations[] = {
    /* 1: files, photos, jobs, models, vectors */
    "CREATE TABLE files ("
    "  id INTEGER PRIMARY KEY,"
    "  path TEXT NOT NULL UNIQUE," /* bytes as the OS gave them (may be non-UTF-8) */
    "  size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,"
    "  inode INTEGER NOT NULL, dev INTEGER NOT NULL,"
    "  status INTEGER NOT NULL DEFAULT 0,"
    "  photo_id INTEGER REFERENCES photos(id),"
    "  error TEXT,"
    "  seen_at INTEGER NOT NULL DEFAULT (unixepoch())"
    ");"
    "CREATE INDEX files_status ON files(status, id);"
    "CREATE INDEX files_photo ON files(photo_id);"
    "CREATE TABLE photos ("
    "  id INTEGER PRIMARY KEY,"
    "  hash BLOB NOT NULL UNIQUE," /* xxh3-128, 16 bytes big-endian */
    "  size INTEGER NOT NULL,"
    "  format TEXT,"
    "  width INTEGER, height INTEGER," /* as displayed (orientation applied) */
    "  taken_at TEXT, tz_offset TEXT, taken_unix INTEGER, time_source TEXT,"
    "  make TEXT, model TEXT, lens TEXT, software TEXT,"
    "  focal_mm REAL, focal35_mm REAL, fnumber REAL, exposure_s REAL, iso INTEGER,"
    "  gps_lat REAL, gps_lon REAL, gps_alt REAL,"
    "  orientation INTEGER, has_exif INTEGER,"
    "  added_at INTEGER NOT NULL DEFAULT (unixepoch())"
    ");"
    "CREATE INDEX photos_taken ON photos(taken_unix);"
    "CREATE TABLE jobs ("
    "  photo_id INTEGER NOT NULL REFERENCES photos(id),"
    "  stage TEXT NOT NULL,"
    "  state INTEGER NOT NULL DEFAULT 0," /* 0 pending, 1 done, 2 failed */
    "  error TEXT,"
    "  PRIMARY KEY (photo_id, stage)"
    ") WITHOUT ROWID;"
    "CREATE INDEX jobs_state ON jobs(stage, state, photo_id);"
    "CREATE TABLE models ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  dim INTEGER NOT NULL,"
    "  added_at INTEGER NOT NULL DEFAULT (unixepoch())"
    ");"
    "CREATE TABLE vectors ("
    "  model_id INTEGER NOT NULL REFERENCES models(id),"
    "  photo_id INTEGER NOT NULL REFERENCES photos(id),"
    "  vec BLOB NOT NULL," /* dim little-endian float32 */
    "  PRIMARY KEY (model_id, photo_id)"
    ") WITHOUT ROWID;"
    "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;",
    /* 2: a version per model's vectors (the search matrix file is rebuilt when it moves on),
     * and tags (user, auto, imported) with their source and score */
    "ALTER TABLE models ADD COLUMN vec_version INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE tags ("
    "  photo_id INTEGER NOT NULL REFERENCES photos(id),"
    "  tag TEXT NOT NULL COLLATE NOCASE,"
    "  source TEXT NOT NULL," /* user, auto, xmp, lightroom, takeout, apple */
    "  score REAL,"
    "  PRIMARY KEY (photo_id, tag, source)"
    ") WITHOUT ROWID;"
    "CREATE INDEX tags_tag ON tags(tag, photo_id);",
};
