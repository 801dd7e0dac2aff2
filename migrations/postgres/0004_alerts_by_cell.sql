-- History near a point: every alert indexed by the grid cell that holds it,
-- with its id, at five cell sizes. Mirrors the SQLite one (see there).

ALTER TABLE alerts ADD COLUMN cell_2km BIGINT GENERATED ALWAYS AS
    ((floor((lat + 90) * 64) * 23041 + floor((lon + 180) * 64))::bigint) STORED;
ALTER TABLE alerts ADD COLUMN cell_7km BIGINT GENERATED ALWAYS AS
    ((floor((lat + 90) * 16) * 5761 + floor((lon + 180) * 16))::bigint) STORED;
ALTER TABLE alerts ADD COLUMN cell_28km BIGINT GENERATED ALWAYS AS
    ((floor((lat + 90) * 4) * 1441 + floor((lon + 180) * 4))::bigint) STORED;
ALTER TABLE alerts ADD COLUMN cell_111km BIGINT GENERATED ALWAYS AS
    ((floor(lat + 90) * 361 + floor(lon + 180))::bigint) STORED;
ALTER TABLE alerts ADD COLUMN cell_444km BIGINT GENERATED ALWAYS AS
    ((floor((lat + 90) / 4) * 91 + floor((lon + 180) / 4))::bigint) STORED;

CREATE INDEX alerts_by_cell_2km ON alerts (cell_2km, id, lat, lon);
CREATE INDEX alerts_by_cell_7km ON alerts (cell_7km, id, lat, lon);
CREATE INDEX alerts_by_cell_28km ON alerts (cell_28km, id, lat, lon);
CREATE INDEX alerts_by_cell_111km ON alerts (cell_111km, id, lat, lon);
CREATE INDEX alerts_by_cell_444km ON alerts (cell_444km, id, lat, lon);

DROP INDEX alerts_by_place;
