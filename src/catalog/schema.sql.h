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
    /* 3: XMP properties read from sidecars and embedded packets (src/interop/xmp*.c), and a
     * cache of computed blobs by key (the tag vocabulary's text embeddings per model) */
    "CREATE TABLE photo_xmp ("
    "  photo_id INTEGER PRIMARY KEY REFERENCES photos(id),"
    "  rating INTEGER, label TEXT, title TEXT, description TEXT"
    ");"
    "CREATE TABLE blob_cache ("
    "  key TEXT PRIMARY KEY,"
    "  data BLOB NOT NULL,"
    "  added_at INTEGER NOT NULL DEFAULT (unixepoch())"
    ") WITHOUT ROWID;",
    /* 4: text about a photo, one row per source (OCR now; captions, XMP titles and
     * descriptions later), with a full-text index: external-content FTS5 kept in step by
     * triggers; unicode61 with remove_diacritics 2 so "creme" finds "crème" */
    "CREATE TABLE texts ("
    "  id INTEGER PRIMARY KEY,"
    "  photo_id INTEGER NOT NULL REFERENCES photos(id),"
    "  source TEXT NOT NULL," /* ocr, caption, title, description, tag, ... */
    "  text TEXT NOT NULL,"
    "  confidence REAL," /* 0-100 for OCR, NULL when the source has none */
    "  model TEXT,"      /* what produced it: "tesseract-5.3.0:eng", a caption model id */
    "  updated_at INTEGER NOT NULL DEFAULT (unixepoch()),"
    "  UNIQUE (photo_id, source)"
    ");"
    "CREATE VIRTUAL TABLE texts_fts USING fts5(text, content='texts', content_rowid='id',"
    "  tokenize='unicode61 remove_diacritics 2');"
    "CREATE TRIGGER texts_ai AFTER INSERT ON texts BEGIN"
    "  INSERT INTO texts_fts(rowid, text) VALUES (new.id, new.text);"
    "END;"
    "CREATE TRIGGER texts_ad AFTER DELETE ON texts BEGIN"
    "  INSERT INTO texts_fts(texts_fts, rowid, text) VALUES ('delete', old.id, old.text);"
    "END;"
    "CREATE TRIGGER texts_au AFTER UPDATE ON texts BEGIN"
    "  INSERT INTO texts_fts(texts_fts, rowid, text) VALUES ('delete', old.id, old.text);"
    "  INSERT INTO texts_fts(rowid, text) VALUES (new.id, new.text);"
    "END;",
    /* 5: imports from other programs (src/catalog/lightroom.c): Lightroom catalog images
     * (matched to photos or not), albums/collections, where an extracted preview's original
     * was, Google Takeout sidecars and edited versions, Apple Photos assets. Titles, captions
     * and Apple's OCR go to texts with sources "lightroom:title", "takeout:description", ... */
    "CREATE TABLE lr_images ("
    "  catalog TEXT NOT NULL,"                  /* the .lrcat's absolute path */
    "  lr_id INTEGER NOT NULL,"                 /* Adobe_images.id_local */
    "  photo_id INTEGER REFERENCES photos(id)," /* NULL: not in shoebox */
    "  original_path TEXT,"
    "  virtual_copy INTEGER NOT NULL DEFAULT 0,"
    "  rating INTEGER, pick INTEGER, color_label TEXT, capture_time TEXT,"
    "  PRIMARY KEY (catalog, lr_id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX lr_images_photo ON lr_images(photo_id);"
    "CREATE TABLE albums ("
    "  photo_id INTEGER NOT NULL REFERENCES photos(id),"
    "  source TEXT NOT NULL," /* lightroom, apple */
    "  album TEXT NOT NULL,"  /* "Parent/Child" for nested collections and folders */
    "  PRIMARY KEY (photo_id, source, album)"
    ") WITHOUT ROWID;"
    "CREATE INDEX albums_album ON albums(album, photo_id);"
    "CREATE TABLE original_paths ("
    "  path TEXT PRIMARY KEY,"       /* a file shoebox indexed (an extracted preview) */
    "  original_path TEXT NOT NULL," /* the original it stands for (maybe offline) */
    "  source TEXT NOT NULL"         /* lightroom-preview */
    ") WITHOUT ROWID;"
    "CREATE TABLE takeout_meta ("
    "  photo_id INTEGER PRIMARY KEY REFERENCES photos(id),"
    "  sidecar TEXT,"
    "  edited_of INTEGER REFERENCES photos(id)" /* this is the "-edited" version of that photo */
    ");"
    "CREATE TABLE apple_assets ("
    "  library TEXT NOT NULL," /* the .photoslibrary's absolute path */
    "  uuid TEXT NOT NULL,"    /* ZASSET.ZUUID */
    "  photo_id INTEGER REFERENCES photos(id),"
    "  original_path TEXT, taken_at TEXT, favorite INTEGER, hidden INTEGER,"
    "  lat REAL, lon REAL,"
    "  PRIMARY KEY (library, uuid)"
    ") WITHOUT ROWID;"
    "CREATE INDEX apple_assets_photo ON apple_assets(photo_id);",
    /* 6: the present photos of a query without filters, in photo order, from an index walk */
    "CREATE INDEX files_present ON files(status, photo_id);",
    /* 7: a counter that moves whenever the set of present photos may have changed (a file
     * becomes present or stops being, or a present file changes photo), so that readers can
     * cache "the present photos" (the web server's search mask) and see when to refresh it.
     * Unchanged files on a rescan are not written, so a rescan does not move it. */
    "CREATE TABLE present_gen (id INTEGER PRIMARY KEY CHECK (id = 0), gen INTEGER NOT NULL);"
    "INSERT INTO present_gen VALUES (0, 0);"
    "CREATE TRIGGER present_gen_ins AFTER INSERT ON files WHEN NEW.status = 1"
    " BEGIN UPDATE present_gen SET gen = gen + 1 WHERE id = 0; END;"
    "CREATE TRIGGER present_gen_del AFTER DELETE ON files WHEN OLD.status = 1"
    " BEGIN UPDATE present_gen SET gen = gen + 1 WHERE id = 0; END;"
    "CREATE TRIGGER present_gen_upd AFTER UPDATE OF status, photo_id ON files"
    " WHEN (OLD.status = 1) <> (NEW.status = 1)"
    "   OR (NEW.status = 1 AND OLD.photo_id IS NOT NEW.photo_id)"
    " BEGIN UPDATE present_gen SET gen = gen + 1 WHERE id = 0; END;",
};
