-- History near a point: every alert indexed by the grid cell that holds it,
-- with its id, at five cell sizes (server/src/domain/place.rs, GRIDS), so
-- that the newest alerts near a place are read cell by cell in id order
-- instead of sorting every alert of a latitude band. A cell is its row from
-- the south pole times the number of columns, plus its column from the
-- antimeridian; the scales are powers of two, so the server computes the
-- same cells. lat + 90 and lon + 180 are never negative: CAST truncates
-- them as floor would. lat and lon are in the index so that rows outside
-- the place's bounding box are passed over without reading the alert.

ALTER TABLE alerts ADD COLUMN cell_2km INTEGER GENERATED ALWAYS AS
    (CAST((lat + 90) * 64 AS INTEGER) * 23041 + CAST((lon + 180) * 64 AS INTEGER)) VIRTUAL;
ALTER TABLE alerts ADD COLUMN cell_7km INTEGER GENERATED ALWAYS AS
    (CAST((lat + 90) * 16 AS INTEGER) * 5761 + CAST((lon + 180) * 16 AS INTEGER)) VIRTUAL;
ALTER TABLE alerts ADD COLUMN cell_28km INTEGER GENERATED ALWAYS AS
    (CAST((lat + 90) * 4 AS INTEGER) * 1441 + CAST((lon + 180) * 4 AS INTEGER)) VIRTUAL;
ALTER TABLE alerts ADD COLUMN cell_111km INTEGER GENERATED ALWAYS AS
    (CAST(lat + 90 AS INTEGER) * 361 + CAST(lon + 180 AS INTEGER)) VIRTUAL;
ALTER TABLE alerts ADD COLUMN cell_444km INTEGER GENERATED ALWAYS AS
    (CAST((lat + 90) / 4 AS INTEGER) * 91 + CAST((lon + 180) / 4 AS INTEGER)) VIRTUAL;

CREATE INDEX alerts_by_cell_2km ON alerts (cell_2km, id, lat, lon);
CREATE INDEX alerts_by_cell_7km ON alerts (cell_7km, id, lat, lon);
CREATE INDEX alerts_by_cell_28km ON alerts (cell_28km, id, lat, lon);
CREATE INDEX alerts_by_cell_111km ON alerts (cell_111km, id, lat, lon);
CREATE INDEX alerts_by_cell_444km ON alerts (cell_444km, id, lat, lon);

-- Replaced by the cells: a latitude range alone matches a whole band.
DROP INDEX alerts_by_place;
